{-# LANGUAGE BangPatterns, OverloadedStrings, CPP #-}
-- | The DOGE pair reducer (DOGE_REDUCER.md sections 3-5, 8), ported from the
-- Python module. Where the spec is silent the upstream Python's choices are
-- kept: a trade id other than "A" goes down the B branch (`trade_id == "A"`
-- tests), a side other than "buy" down the sell branch, a role other than
-- "entry" counts as an exit when filled, and removing an order removes every
-- order with that local_id. The project's reference (adapters/doge/reference) agrees.
-- DOGE_REDUCER.md section 9 ("Bit-exact details") is followed item by item, each marked
-- "section 9" where it is done (tests/test_bitexact.py checks them against the reference, type
-- for type): the eviction fee grouping, the market > 0 guards, today_realized_loss always
-- reassigned, trade ids other than A/B, eviction by id, int(max_recovery_slots) when orphaning,
-- the recovery entry time (> 0), and apply_order_regime_at_entry with the bot's wrapper semantics.
-- A typed port: event numbers are doubles, so where the module keeps an event's int unchanged
-- (market_price, an exit's entry fields) this answers the equal float; every value section 9
-- says is float()ed is a float here too.
module Reducer
  ( Env(..), transition, checkInvariants, applyOrderRegime, derivePhase
  ) where

import qualified Data.Text as T
import Data.Text (Text)
import qualified Data.Sequence as Seq
import Data.List (sortBy, find)
import Data.Ord (comparing)
import Value
import Types
#include "mutants.h"
#ifdef MUTANTS
import Mutants
import Sabotage
#endif

data Env = Env
  { eCfg :: Config
  , eSize :: Double                  -- order_size_usd
  , eSizes :: Maybe [(Text, V)]      -- order_sizes (None = not given)
  , eMut :: Mut }

-- A state + actions + error monad.
data R = R { rSt :: !St, rActs :: [Action] }
newtype Red a = Red { runRed :: Env -> R -> Either String (a, R) }

instance Functor Red where
  fmap f (Red g) = Red $ \e r -> case g e r of
    Left err -> Left err
    Right (a, r') -> Right (f a, r')
instance Applicative Red where
  pure a = Red $ \_ r -> Right (a, r)
  Red f <*> Red g = Red $ \e r -> case f e r of
    Left err -> Left err
    Right (h, r') -> case g e r' of
      Left err -> Left err
      Right (a, r'') -> Right (h a, r'')
instance Monad Red where
  Red g >>= k = Red $ \e r -> case g e r of
    Left err -> Left err
    Right (a, r') -> runRed (k a) e r'

getSt :: Red St
getSt = Red $ \_ r -> Right (rSt r, r)
modSt :: (St -> St) -> Red ()
modSt f = Red $ \_ r -> let !s = f (rSt r) in Right ((), r { rSt = s })
emit :: Action -> Red ()
emit a = Red $ \_ r -> Right ((), r { rActs = a : rActs r })
cfgR :: Red Config
cfgR = Red $ \e r -> Right (eCfg e, r)
failR :: String -> Red a
failR msg = Red $ \_ _ -> Left msg
liftE :: Either String a -> Red a
liftE = either failR pure
envR :: Red Env
envR = Red $ \e r -> Right (e, r)
#ifdef MUTANTS
isMut :: Mutant -> Red Bool
isMut m = Red $ \e r -> Right (m `elem` eMut e, r)
-- | Run a pure sabotage on the state (failure mutants).
sabotage :: (St -> St) -> Red ()
sabotage = modSt
#endif

-- Helpers -------------------------------------------------------------------------

isA :: Text -> Bool
isA t = teq t "A"

derivePhase :: St -> Phase
derivePhase st
  | bx && sx = S2
  | bx = S1a
  | sx = S1b
  | otherwise = S0
  where
    os = sOrders st
    bx = any (\o -> teq (oSide o) "buy" && teq (oRole o) "exit") os
    sx = any (\o -> teq (oSide o) "sell" && teq (oRole o) "exit") os

clearS2UnlessS2 :: Red ()
clearS2UnlessS2 = do
  m <- MUTANT(S2KeptAfterFill)
  if m then pure () else modSt $ \st -> case sS2EnteredAt st of
    VNil -> st
    _ | derivePhase st == S2 -> st
      | otherwise -> st { sS2EnteredAt = VNil }

roundPrice :: Double -> Red Double
roundPrice x = do
  c <- cfgR
  m <- MUTANT(RoundScaledDouble)
  halfUpTie <- MUTANT(RoundHalfUpExactTie)
  let n = cPriceDecimals c
  pure $ if m && n >= 0 && n <= 15
    then let s = 10 ^ n :: Double in fromInteger (round (x * s)) / s
    else if halfUpTie then halfUpOnTie n x else pyRound n x

-- | The RoundHalfUpExactTie mutant: an exact binary tie at n decimals goes up; anything else as Python.
halfUpOnTie :: Integer -> Double -> Double
halfUpOnTie n x
  | n < 0 || n > 300 || isNaN x || isInfinite x = pyRound n x
  | otherwise =
      let scale = 10 ^ n :: Integer
          r = toRational x * fromInteger scale
          f = floor r :: Integer
      in if r - fromInteger f == 1 / 2 then fromRational (fromInteger (f + 1) / fromInteger scale) else pyRound n x

entryDistance :: Config -> Mut -> Text -> Double
entryDistance c mut trade =
  -- section 9: only "A" takes entry_pct_a and only "B" entry_pct_b; any other id uses entry_pct
  let over | isA trade = cEntryPctA c
           | not (teq trade "B") = Nothing
           | MUTANT_IN(EntryPctBIgnored, mut) = cEntryPctA c
           | otherwise = cEntryPctB c
      d = case over of
        Just x | x > 0 -> x
        _ -> cEntryPct c
  in if d <= 0 then cEntryPct c else d

backoff :: Config -> Mut -> Integer -> Double
backoff c mut n
  | n < cLossBackoffStart c = 1.0
  | otherwise =
      let k = n - cLossBackoffStart c + (if MUTANT_IN(BackoffOffByOne, mut) then 0 else 1)
          mul = 1.0 + cBackoffFactor c * fromInteger k
      in pyMin (cBackoffMaxMult c) mul

orderVolume :: Double -> Double -> Red (Maybe Double)
orderVolume p s = do
  c <- cfgR
  if p <= 0 || s <= 0 || (cMinCostUsd c > 0 && s < cMinCostUsd c) then pure Nothing else do
    let raw = s / p
    halfUp <- MUTANT(VolumeRoundHalfUp)
    vol <- if cVolumeDecimals c <= 0
      then if halfUp && not (isNaN raw || isInfinite raw)
             then pure (fromInteger (let f = floor raw in if raw - fromInteger f >= 0.5 then f + 1 else f))
             else fromInteger <$> liftE (pyRoundInt raw)
      else pure (pyRound (cVolumeDecimals c) raw)
    pure $ if vol < cMinVolume c || (cMinCostUsd c > 0 && vol * p < cMinCostUsd c) then Nothing else Just vol

effectiveSize :: Text -> Red Double
effectiveSize trade = do
  e <- envR
  case eSizes e of
    Just kvs | Just v <- lookupT trade kvs -> case vNum v of
      Just d -> pure d
      Nothing -> failR ("order_sizes[" ++ T.unpack trade ++ "]: expected a number")
    _ -> pure (eSize e)

-- | Place a new entry; nothing happens when no valid volume comes out.
placeEntry :: Text -> Text -> Integer -> Double -> Text -> Red ()
placeEntry side trade cyc size reason = do
  c <- cfgR
  e <- envR
  st <- getSt
  let mut = eMut e
      d = entryDistance c mut trade
      market = sMarket st
      isBuy = teq side "buy"
      -- section 9: a buy uses losses_b only for trade "B" (else _a); a sell uses losses_a only for "A" (else _b)
      losses | isBuy = if teq trade "B" then sLossesB st else sLossesA st
             | otherwise = if isA trade then sLossesA st else sLossesB st
      mult = backoff c mut losses
  p1 <- roundPrice (if isBuy then market * (1 - d * mult / 100) else market * (1 + d * mult / 100))
  price <- if p1 <= 0 then roundPrice (if isBuy then market * (1 - d / 100) else market * (1 + d / 100))
           else pure p1
  mvol <- orderVolume price size
  case mvol of
    Nothing -> pure ()
    Just vol -> do
      let lid = sNextOrderId st
          o = Order { oLocalId = lid, oSide = side, oRole = "entry", oPrice = price, oVolume = vol
                    , oTradeId = trade, oCycle = cyc, oTxid = "", oPlacedAt = sNow st, oEntryPrice = 0
                    , oEntryFee = VFloat 0, oEntryFilledAt = 0, oRegime = Nothing }
      modSt $ \s -> s { sNextOrderId = lid + 1, sOrders = sOrders s ++ [o] }
      emit (PlaceOrder lid side "entry" price vol trade cyc reason)

followUp :: Text -> Double -> Text -> Red ()
followUp trade size reason = do
  st <- getSt
  if isA trade
    then if sLongOnly st || sNow st < sCooldownA st then pure ()
         else placeEntry "sell" "A" (sCycleA st) size reason
    else if sShortOnly st || sNow st < sCooldownB st then pure ()
         else placeEntry "buy" "B" (sCycleB st) size reason

-- | The exit-like thing a cycle is booked from.
data Exitish = Exitish { xTrade :: Text, xCycle :: Integer, xVolume :: Double, xEntryPrice :: Double
                       , xEntryFee :: Double, xEntryTime :: Double, xRegime :: Maybe Integer }

bookCycle :: Exitish -> Double -> V -> Double -> Bool -> Red Double
bookCycle x px fxV t fromRec = do
#ifdef MUTANTS
  intFee <- MUTANT(FeeIntBookedAsInt)
#endif
  swapped <- MUTANT(QuoteFeeSwappedRecovery)
  capped <- MUTANT(HistoryCapped)
  -- Fees are float()ed when booking (section 9): a Double here already; the mutant
  -- fee_int_booked_as_int instead writes an int-valued fee of the event as an int (see Fields.bookedFee).
  let fx = feeValue fxV
      trade = xTrade x
      gross = if isA trade then (xEntryPrice x - px) * xVolume x else (px - xEntryPrice x) * xVolume x
      ef = xEntryFee x
      fees = ef + fx
      net = gross - fees
      quote | swapped && fromRec = if isA trade then fx else ef
            | otherwise = if isA trade then ef else fx
      settled = gross - quote
      rec = Cycle { yTradeId = trade, yCycle = xCycle x, yEntryPrice = xEntryPrice x, yExitPrice = px
                  , yVolume = xVolume x, yGross = gross, yFees = fees, yNet = net, yEntryFee = ef
                  , yExitFee = fx, yQuoteFee = quote, ySettled = settled, yEntryTime = xEntryTime x
                  , yExitTime = t, yFromRecovery = fromRec, yRegime = xRegime x
#ifdef MUTANTS
                  , yFeeAsInt = intFee && isIntV fxV
#endif
                  }
      keep cs = if capped && Seq.length cs > 32 then Seq.drop (Seq.length cs - 32) cs else cs
  modSt $ \s -> s { sCycles = keep (sCycles s Seq.|> rec), sTotalProfit = sTotalProfit s + net
                  , sTotalSettled = sTotalSettled s + settled, sTotalFees = sTotalFees s + fx
                  -- always reassigned (section 9: a stored -0.0 becomes 0.0)
                  , sTodayLoss = sTodayLoss s + (if net < 0 then abs net else 0)
                  , sRoundTrips = sRoundTrips s + 1 }
  lossCounters trade net
  emit (BookCycle trade (xCycle x) net gross fees settled fromRec)
  pure net

lossCounters :: Text -> Double -> Red ()
lossCounters trade net = do
  c <- cfgR
  breakEven <- MUTANT(BreakEvenCountsAsLoss)
  offByOne <- MUTANT(LossCooldownOffByOne)
  let isLoss = if breakEven then net <= 0 else net < 0
      reached n = if offByOne then n > cLossCooldownStart c else n >= cLossCooldownStart c
  modSt $ \s ->
    let now = sNow s
        reentry cd = if cReentryBaseCooldown c > 0 then pyMax cd (now + cReentryBaseCooldown c) else cd
    in if isA trade
      then let cd0 = reentry (sCooldownA s)
               n = if isLoss then sLossesA s + 1 else 0
               cd = if reached n then pyMax cd0 (now + cLossCooldownSec c) else cd0
           in s { sLossesA = n, sCooldownA = cd }
      else let cd0 = reentry (sCooldownB s)
               n = if isLoss then sLossesB s + 1 else 0
               cd = if reached n then pyMax cd0 (now + cLossCooldownSec c) else cd0
           in s { sLossesB = n, sCooldownB = cd }

removeOrder :: Integer -> St -> St
removeOrder lid s = s { sOrders = filter ((/= lid) . oLocalId) (sOrders s) }

-- | Orphan an exit order into the recovery book (with the recovery cap).
orphan :: Order -> Text -> Red ()
orphan o reason = do
  c <- cfgR
  st <- getSt
  newestFirst <- MUTANT(EvictNewestFirst)
  byPosition <- MUTANT(EvictByPosition)
  rankOrder <- MUTANT(EvictKeepsRankOrder)
  let recs = sRecs st
      market = sMarket st
  slots <- liftE (either (\e -> Left ("max_recovery_slots: " ++ e)) Right (pyInt (cMaxRecoverySlots c)))
  let overflow = toInteger (length recs) + 1 - max 1 slots
      dist r = if market > 0 then abs (rPrice r - market) / market else 0
      key (i, r) = (negate (dist r), if newestFirst then negate (rOrphanedAt r) else rOrphanedAt r, rRecoveryId r, i :: Int)
      ranked = sortBy (comparing key) (zip [0 ..] recs)
      chosen = take (fromInteger (max 0 overflow)) ranked
      -- section 9: eviction selects ids, so every recovery sharing a selected id goes
      evictIdx = map fst chosen
      evictIds = map (rRecoveryId . snd) chosen
      gone (i, r) = if byPosition then i `elem` evictIdx else rRecoveryId r `elem` evictIds
      indexed = zip [0 ..] recs
      evicted = [r | ir@(_, r) <- indexed, gone ir]
      kept = if rankOrder && length recs >= 3 then [r | ir@(_, r) <- reverse ranked, not (gone ir)]
             else [r | ir@(_, r) <- indexed, not (gone ir)]
  if overflow > 0
    then do
      modSt $ \s -> s { sRecs = kept }
      mapM_ evict evicted
    else pure ()
  st1 <- getSt
  let rid = sNextRecoveryId st1
      r = Recovery { rRecoveryId = rid, rSide = oSide o, rPrice = oPrice o, rVolume = oVolume o
                   , rTradeId = oTradeId o, rCycle = oCycle o, rEntryPrice = oEntryPrice o
                   , rOrphanedAt = sNow st1, rEntryFee = oEntryFee o, rEntryFilledAt = oEntryFilledAt o
                   , rTxid = oTxid o, rReason = reason, rRegime = oRegime o }
  modSt $ \s -> removeOrder (oLocalId o) s { sRecs = sRecs s ++ [r], sNextRecoveryId = rid + 1 }
  emit (OrphanOrder (oLocalId o) rid reason)
  let trade = oTradeId o
  modSt $ \s ->
    let reentry cd = if cReentryBaseCooldown c > 0 then pyMax cd (sNow s + cReentryBaseCooldown c) else cd
    in if isA trade then s { sCooldownA = reentry (sCooldownA s), sCycleA = sCycleA s + 1 }
       else s { sCooldownB = reentry (sCooldownB s), sCycleB = sCycleB s + 1 }
  -- section 9: when orphaning, order_sizes["A"] for trade "A", order_sizes["B"] for every other id
  size <- effectiveSize (if isA trade then "A" else "B")
  followUp trade size (if isA trade then "orphan_A" else "orphan_B")
  where
    evict r = do
      c <- cfgR
      s <- getSt
      if T.null (rTxid r) then pure ()
        else emit (CancelOrder (negate (rRecoveryId r)) (rTxid r) "recovery_cap_evict_priority")
      oldGrouping <- MUTANT(EvictFeeOldGrouping)
      -- section 9: x = float(market if market > 0 else r.price); if x <= 0 (not NaN) then
      -- float(entry_price if > 0 else 0.0); fee = max(0.0, x * volume * (maker_fee_pct / 100.0))
      let x0 = sMarket s
          x1 = if x0 > 0 then x0 else rPrice r
          x = if x1 <= 0 then (if rEntryPrice r > 0 then rEntryPrice r else 0.0) else x1
          fee | oldGrouping = pyMax 0 (x * rVolume r * cMakerFeePct c / 100)
              | otherwise = pyMax 0 (x * rVolume r * (cMakerFeePct c / 100))
      rec <- recExitish r
      _ <- bookCycle rec x (VFloat fee) (sNow s) True
      pure ()

recExitish :: Recovery -> Red Exitish
recExitish r = do
  truthyTime <- MUTANT(RecoveryEntryTimeTruthy)
  -- section 9: entry_filled_at if > 0, else orphaned_at (a negative or NaN entry_filled_at takes orphaned_at)
  let filled = rEntryFilledAt r
      useFilled = if truthyTime then filled /= 0 else filled > 0
  pure Exitish { xTrade = rTradeId r, xCycle = rCycle r, xVolume = rVolume r
               , xEntryPrice = rEntryPrice r, xEntryFee = feeValue (rEntryFee r)
               , xEntryTime = if useFilled then filled else rOrphanedAt r
               , xRegime = rRegime r }

-- | An event's fee (checked to be a number when the event was read) as the Double
-- that float() gives.
feeValue :: V -> Double
feeValue v = maybe 0 id (vNum v)

#ifdef MUTANTS
-- | The fee came as an int (the fee_int_booked_as_int mutant).
isIntV :: V -> Bool
isIntV v = case v of
  VInt _ -> True
  _ -> False
#endif

-- Python's `==` between an int field and an event's id value.
idMatches :: V -> Integer -> Bool
idMatches v i = case v of
  VInt j -> i == j
  VFloat d -> not (isNaN d || isInfinite d) && toRational d == fromInteger i
  VBool b -> i == (if b then 1 else 0)
  _ -> False

-- Events ---------------------------------------------------------------------------

step :: Event -> Red ()
step ev = case ev of
  PriceTick priceV ts -> do
    let price = feeValue priceV
        raw = case priceV of { VFloat _ -> VNil; v -> v }   -- an int (or bool) price stays as sent
    modSt $ \s -> s { sNow = ts, sMarket = price, sMarketRaw = raw, sLastPriceUpdateAt = VFloat ts }
    hang <- MUTANT(HangPriceAtOrder)
    st <- getSt
    if hang && any ((== price) . oPrice) (sOrders st) then SABOTAGE(hangOn) else pure ()
    refresh
  TimerTick ts -> do
    modSt $ \s -> s { sNow = ts }
    c <- cfgR
    if cSticky c then modSt (\s -> s { sS2EnteredAt = VNil }) else timer
  FillEvent lidV txid price vol fee ts -> do
    modSt $ \s -> s { sNow = ts }
    st <- getSt
    case find (idMatches lidV . oLocalId) (sOrders st) of
      Nothing -> pure ()
      Just o -> do
        garbage <- MUTANT(GarbageNonAsciiTxid)
        if garbage && nonAscii txid then SABOTAGE(garbageThen) else pure ()
        modSt (removeOrder (oLocalId o))
        if teq (oRole o) "entry" then entryFilled o price vol fee ts else exitFilled o price fee ts
        clearS2UnlessS2
  RecoveryFillEvent ridV txid price _vol fee ts -> do
    modSt $ \s -> s { sNow = ts }
    st <- getSt
    case find (idMatches ridV . rRecoveryId) (sRecs st) of
      Nothing -> pure ()
      Just r -> do
        garbage <- MUTANT(GarbageNonAsciiTxid)
        if garbage && nonAscii txid then SABOTAGE(garbageThen) else pure ()
        modSt $ \s -> s { sRecs = filter ((/= rRecoveryId r) . rRecoveryId) (sRecs s) }
        rec <- recExitish r
        _ <- bookCycle rec price fee ts True
        clearS2UnlessS2
  RecoveryCancelEvent ridV ts -> do
    modSt $ \s -> s { sNow = ts, sRecs = filter (not . idMatches ridV . rRecoveryId) (sRecs s) }
    clearS2UnlessS2
  where
    nonAscii (VStr t) = T.any (> '\x7f') t
    nonAscii _ = False

entryFilled :: Order -> Double -> Double -> V -> Double -> Red ()
entryFilled o price vol fee ts = do
  c <- cfgR
  st <- getSt
  let exitSide = if teq (oSide o) "buy" then "sell" else "buy"
      p = if sProfitPctRuntime st /= 0 then sProfitPctRuntime st else cProfitPct c
      market = sMarket st
  xp <- if teq exitSide "sell"
          then roundPrice (pyMax (price * (1 + p / 100)) (market * (1 + cEntryPct c / 100)))
          else roundPrice (pyMin (price * (1 - p / 100)) (market * (1 - cEntryPct c / 100)))
  let lid = sNextOrderId st
      x = Order { oLocalId = lid, oSide = exitSide, oRole = "exit", oPrice = xp, oVolume = vol
                , oTradeId = oTradeId o, oCycle = oCycle o, oTxid = "", oPlacedAt = ts, oEntryPrice = price
                , oEntryFee = fee, oEntryFilledAt = ts, oRegime = oRegime o }   -- the fee as sent
  modSt $ \s -> s { sTotalFees = sTotalFees s + feeValue fee, sOrders = sOrders s ++ [x], sNextOrderId = lid + 1 }
  emit (PlaceOrder lid exitSide "exit" xp vol (oTradeId o) (oCycle o) "entry_fill_exit")

exitFilled :: Order -> Double -> V -> Double -> Red ()
exitFilled o price fee ts = do
  crash <- MUTANT(CrashZeroFeeExit)
  if crash && feeValue fee == 0 then SABOTAGE(crashWith "Ratio has zero denominator (fee share)") else pure ()
  let x = Exitish { xTrade = oTradeId o, xCycle = oCycle o, xVolume = oVolume o, xEntryPrice = oEntryPrice o
                  , xEntryFee = feeValue (oEntryFee o), xEntryTime = oEntryFilledAt o, xRegime = oRegime o }
  _ <- bookCycle x price fee ts False
  noMax <- MUTANT(CycleMaxDropped)
  let trade = oTradeId o
      next cur = if noMax then oCycle o + 1 else max cur (oCycle o + 1)
  modSt $ \s -> if isA trade then s { sCycleA = next (sCycleA s) } else s { sCycleB = next (sCycleB s) }
  size <- effectiveSize trade
  followUp trade size "cycle_complete"

refresh :: Red ()
refresh = do
  st <- getSt
  c <- cfgR
  strictDrift <- MUTANT(RefreshDriftStrict)
  let market = sMarket st
      drift o = if market > 0 then abs (oPrice o - market) / market * 100 else 0
      stale o = teq (oRole o) "entry"
             && not (if strictDrift then drift o < cRefreshPct c else drift o <= cRefreshPct c)
             && not (sNow st < cooldownOf (oTradeId o) st)
  case find stale (sOrders st) of
    Nothing -> pure ()
    Just o -> refreshOne c o
  where
    cooldownOf t s = if isA t then sRefreshCooldownA s else sRefreshCooldownB s

refreshOne :: Config -> Order -> Red ()
refreshOne c o = do
  keepCd <- MUTANT(AntiChaseKeepsCooldown)
  ignoreDir <- MUTANT(RefreshIgnoresDirection)
  st0 <- getSt
  let a = isA (oTradeId o)
      maxc = cMaxConsecRefreshes c
      (cnt0, cd0) = if a then (sRefreshesA st0, sRefreshCooldownA st0) else (sRefreshesB st0, sRefreshCooldownB st0)
      (cnt, cd) = if cnt0 >= maxc && cd0 > 0 then (0, if keepCd then cd0 else 0) else (cnt0, cd0)
      market = sMarket st0
      dir :: Text
      dir | teq (oSide o) "buy" = if market < oPrice o then "down" else "up"
          | otherwise = if market > oPrice o then "up" else "down"
      prevDir = if a then sLastDirA st0 else sLastDirB st0
      sameDir = case prevDir of
        VStr t -> teq t dir
        _ -> False
      count = if sameDir || (ignoreDir && cnt > 0) then cnt + 1 else 1
      setCounters s cdv = if a then s { sRefreshesA = count, sLastDirA = VStr dir, sRefreshCooldownA = cdv }
                               else s { sRefreshesB = count, sLastDirB = VStr dir, sRefreshCooldownB = cdv }
  if count >= maxc
    then modSt $ \s -> setCounters s (sNow s + cRefreshCooldownSec c)
    else do
      modSt (removeOrder (oLocalId o))
      emit (CancelOrder (oLocalId o) (oTxid o) "stale_entry")
      size <- effectiveSize (oTradeId o)
      placeEntry (oSide o) (oTradeId o) (oCycle o) size "refresh_entry"
      modSt $ \s -> setCounters s cd

timer :: Red ()
timer = do
  st0 <- getSt
  c <- cfgR
  let ph = derivePhase st0
  if ph /= S2 then modSt (\s -> s { sS2EnteredAt = VNil }) else pure ()
  st <- getSt
  let market = sMarket st
      now = sNow st
  case ph of
    _ | ph == S1a || ph == S1b -> do
      s1Strict <- MUTANT(S1TimeoutStrict)
      case find (teq "exit" . oRole) (sOrders st) of
        Nothing -> pure ()
        Just ex -> do
          let base | oEntryFilledAt ex /= 0 = oEntryFilledAt ex
                   | oPlacedAt ex /= 0 = oPlacedAt ex
                   | otherwise = now
              age = now - base
              moved = (teq (oSide ex) "sell" && market < oPrice ex) || (teq (oSide ex) "buy" && market > oPrice ex)
              old = if s1Strict then age > cS1OrphanAfter c else age >= cS1OrphanAfter c
          if old && moved then orphan ex "s1_timeout" else pure ()
    S2 -> case sS2EnteredAt st of
      VNil -> modSt (\s -> s { sS2EnteredAt = VFloat now })
      v -> do
        t <- case vNum v of
          Just d -> pure d
          Nothing -> failR "TypeError: s2_entered_at is not a number"
        s2Strict <- MUTANT(S2TimeoutStrict)
        tieBuy <- MUTANT(S2WorseLegTieBuy)
        let elapsed = now - t
            due = if s2Strict then elapsed > cS2OrphanAfter c else elapsed >= cS2OrphanAfter c
            exits = filter (teq "exit" . oRole) (sOrders st)
            bx = find (teq "buy" . oSide) exits
            sx = find (teq "sell" . oSide) exits
        case (bx, sx) of
          (Just b, Just s) | due && market > 0 -> do
            let db = abs (oPrice b - market) / market
                ds = abs (oPrice s - market) / market
                worse = if (if tieBuy then db >= ds else db > ds) then b else s
            orphan worse "s2_timeout"
            modSt (\st' -> st' { sS2EnteredAt = VNil })
          _ -> pure ()
    _ -> pure ()

-- | transition(state, event, cfg, order_size_usd, order_sizes)
transition :: Env -> St -> Event -> Either String (St, [Action])
transition env st ev = case runRed (step ev) env (R st []) of
  Left e -> Left e
  Right (_, r) -> Right (rSt r, reverse (rActs r))

-- Invariants -------------------------------------------------------------------------

checkInvariants :: Mut -> St -> [Text]
checkInvariants mut st
  -- the usual answer, found without building any list
  | not dup && null phaseV && null s2V && not (any orderBad os) && not countersBad = []
  | otherwise = concat [["duplicate order local_id" | dup], phaseV, s2V, perOrder, ["cycle counters must be >= 1" | countersBad]]
  where
    os = sOrders st
    -- one pass over the orders: buy/sell entries and exits, entries, exits;
    -- the phase from them is derivePhase's (a buy exit and/or a sell exit)
    Counts be se bx sx nEntries nExits = orderCounts os
    ph | bx > 0 && sx > 0 = S2
       | bx > 0 = S1a
       | sx > 0 = S1b
       | otherwise = S0
    exits = nExits > 0
    entries = nEntries > 0
    -- some local_id repeats (some order's id equals a later one's)
    dup = hasDup os
    hasDup [] = False
    hasDup (o : rest) = any (\r -> oLocalId r == oLocalId o) rest || hasDup rest
    phaseV = case ph of
      S0 | sLongOnly st -> ["S0 long_only must be exactly one buy entry" | be /= 1 || se > 0 || exits]
         | sShortOnly st -> ["S0 short_only must be exactly one sell entry" | se /= 1 || be > 0 || exits]
         | otherwise -> ["S0 must be exactly A sell entry + B buy entry" | be /= 1 || se /= 1 || exits]
      S1a | sShortOnly st -> ["S1a short_only must have one buy exit" | bx /= 1]
          | otherwise -> ["S1a must be one buy exit + one buy entry" | bx /= 1 || be /= 1 || se > 0 || sx > 0]
      S1b | sLongOnly st -> ["S1b long_only must have one sell exit" | sx /= 1]
          | otherwise -> ["S1b must be one sell exit + one sell entry" | sx /= 1 || se /= 1 || be > 0 || bx > 0]
      S2 -> ["S2 must be one buy exit + one sell exit only" | bx /= 1 || sx /= 1 || entries]
    s2V = case sS2EnteredAt st of
      VNil -> []
      _ | ph /= S2 -> [if MUTANT_IN(InvariantTypo, mut) then "s2_entered_at must be None outside S2"
                       else "s2_entered_at must be null outside S2"]
        | otherwise -> []
    orderBad o = oCycle o < 1 || (teq (oRole o) "exit" && oEntryPrice o <= 0) || oVolume o <= 0
    perOrder = concatMap (\o -> ["order cycle must be >= 1" | oCycle o < 1]
                             ++ ["exit must carry entry_price" | teq (oRole o) "exit" && oEntryPrice o <= 0]
                             ++ ["order volume must be > 0" | oVolume o <= 0]) os
    countersBad = sCycleA st < 1 || sCycleB st < 1

data Counts = Counts !Int !Int !Int !Int !Int !Int

orderCounts :: [Order] -> Counts
orderCounts = go 0 0 0 0 0 0
  where
    go !be !se !bx !sx !ne !nx [] = Counts be se bx sx ne nx
    go be se bx sx ne nx (o : os) =
      let e = teq (oRole o) "entry"
          x = teq (oRole o) "exit"
          b = teq (oSide o) "buy"
          s = teq (oSide o) "sell"
      in go (be + one (e && b)) (se + one (e && s)) (bx + one (x && b)) (sx + one (x && s)) (ne + one e) (nx + one x) os
    one c = if c then 1 else 0

-- | apply_order_regime_at_entry with the bot's wrapper semantics (DOGE_REDUCER.md section 9): the
-- wrapper int()s the local_id first (the caller did), then the module normalises the regime only
-- when some order matches (no match: the state unchanged, no error even for a bad regime).
applyOrderRegime :: Integer -> Either String (Maybe Integer) -> St -> Either String St
applyOrderRegime lid reg st
  | not (any ((== lid) . oLocalId) (sOrders st)) = Right st
  | otherwise = (\r -> st { sOrders = map (f r) (sOrders st) }) <$> reg
  where f r o = if oLocalId o == lid then o { oRegime = r } else o
