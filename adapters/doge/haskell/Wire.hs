{-# LANGUAGE BangPatterns, OverloadedStrings, MagicHash, CPP #-}
-- | Wire form <-> typed data: the lenient from_dict and the ordered to_dict of
-- DOGE_REDUCER.md section 2, config/event parsing, action maps, and the
-- canonical session delta (PROTOCOL.md) with its inverse (patch).
module Wire
  ( fromDict, toDict, stateFieldsV, orderV, recoveryV, cycleV
  , parseConfig, parseEvent, inferEvent, actionPayload, actionTyped
  , normRegime, stateDelta, applyDelta, numField, orderKeys, orderWith
  ) where

import qualified Data.Text as T
import Data.Text (Text)
import qualified Data.Sequence as Seq
import Data.Foldable (toList)
import Data.Maybe (isJust)
import GHC.Exts (reallyUnsafePtrEquality#, isTrue#)
import Value
import Types
#include "mutants.h"
#ifdef MUTANTS
import Mutants
import Sabotage
#endif

type M = Either String

annot :: Text -> M a -> M a
annot k (Left e) = Left (T.unpack k ++ ": " ++ e)
annot _ r = r

-- Lenient field readers over an association list --------------------------------

fInt :: Text -> Integer -> [(Text, V)] -> M Integer
fInt k d m = intOr k d (lookupT k m)

fFloat :: Text -> Double -> [(Text, V)] -> M Double
fFloat k d m = floatOr k d (lookupT k m)

-- side, role, trade_id, txid, reason: None or "" -> default, else str() of the value
fEnum :: Text -> Text -> [(Text, V)] -> Text
fEnum k d m = enumOr d (lookupT k m)

-- The same readers on a field already looked up (Nothing: the key is missing).
intOr :: Text -> Integer -> Maybe V -> M Integer
intOr k d = maybe (Right d) (annot k . pyInt)

floatOr :: Text -> Double -> Maybe V -> M Double
floatOr k d = maybe (Right d) (annot k . pyFloat)

enumOr :: Text -> Maybe V -> Text
enumOr d mv = case mv of
  Nothing -> d
  Just VNil -> d
  Just (VStr t) | T.null t -> d
  Just v -> pyStr v

fBool :: Text -> [(Text, V)] -> Bool
fBool k m = maybe False truthy (lookupT k m)

fRegime :: Mut -> [(Text, V)] -> M (Maybe Integer)
fRegime mut m = maybe (Right Nothing) (annot "regime_at_entry" . normRegime mut) (lookupT "regime_at_entry" m)

-- | Section 2's regime normalisation.
normRegime :: Mut -> V -> M (Maybe Integer)
normRegime mut v = case v of
  VNil -> Right Nothing
  VBool b -> Right (Just (if b then 1 else 0))
  VInt i -> Right (keep i)
  VFloat _ -> keep <$> pyInt v
  VStr t ->
    let s = pyStrip t in
    if pyIsDigitStr s then keep <$> pyInt (VStr s)
    else Right (names (if MUTANT_IN(RegimeCaseSensitive, mut) then s else T.toUpper s))
  _ -> Right Nothing
  where
    keep i = if i >= 0 && i <= 2 then Just i else Nothing
    names s = case s of
      "BEARISH" -> Just 0
      "RANGING" -> Just 1
      "BULLISH" -> Just 2
      _ -> Nothing

-- | Entries of a list field: non-maps are skipped; strings, bytes and maps iterate
-- to non-map items (so give nothing); anything not iterable is an error.
listItems :: Text -> V -> M [[(Text, V)]]
listItems k v = case v of
  VArr xs -> Right [m | VMap m <- xs]
  VStr _ -> Right []
  VBin _ -> Right []
  VMap _ -> Right []
  VBad e -> Left (T.unpack k ++ ": " ++ e)
  _ -> Left (T.unpack k ++ ": TypeError: '" ++ typeName v ++ "' object is not iterable")

typeName :: V -> String
typeName v = case v of
  VNil -> "NoneType"; VBool _ -> "bool"; VInt _ -> "int"; VFloat _ -> "float"
  VStr _ -> "str"; VBin _ -> "bytes"; VArr _ -> "list"; VMap _ -> "dict"; VBad _ -> "unknown"

orderFrom :: Mut -> [(Text, V)] -> M Order
orderFrom mut m = orderWith mut (\_ k -> lookupT k m)

-- | An order's keys in to_dict order (the order 'orderWith' reads them in).
orderKeys :: [Text]
orderKeys =
  [ "local_id", "side", "role", "price", "volume", "trade_id", "cycle", "txid", "placed_at"
  , "entry_price", "entry_fee", "entry_filled_at", "regime_at_entry" ]

-- | from_dict of an order, its fields got by position in 'orderKeys' and name
-- (a reader that already knows where each value is can ignore the name).
orderWith :: Mut -> (Int -> Text -> Maybe V) -> M Order
orderWith mut get = Order
  <$> intOr "local_id" 0 (get 0 "local_id") <*> pure (enumOr "buy" (get 1 "side"))
  <*> pure (enumOr "entry" (get 2 "role")) <*> floatOr "price" 0 (get 3 "price")
  <*> floatOr "volume" 0 (get 4 "volume") <*> pure (enumOr "A" (get 5 "trade_id"))
  <*> intOr "cycle" 0 (get 6 "cycle") <*> pure (enumOr "" (get 7 "txid"))
  <*> floatOr "placed_at" 0 (get 8 "placed_at") <*> floatOr "entry_price" 0 (get 9 "entry_price")
  <*> (VFloat <$> floatOr "entry_fee" 0 (get 10 "entry_fee")) <*> floatOr "entry_filled_at" 0 (get 11 "entry_filled_at")
  <*> maybe (Right Nothing) (annot "regime_at_entry" . normRegime mut) (get 12 "regime_at_entry")

recoveryFrom :: Mut -> [(Text, V)] -> M Recovery
recoveryFrom mut m = Recovery
  <$> fInt "recovery_id" 0 m <*> pure (fEnum "side" "buy" m) <*> fFloat "price" 0 m
  <*> fFloat "volume" 0 m <*> pure (fEnum "trade_id" "A" m) <*> fInt "cycle" 0 m
  <*> fFloat "entry_price" 0 m <*> fFloat "orphaned_at" 0 m <*> (VFloat <$> fFloat "entry_fee" 0 m)
  <*> fFloat "entry_filled_at" 0 m <*> pure (fEnum "txid" "" m) <*> pure (fEnum "reason" "stale" m)
  <*> fRegime mut m

cycleFrom :: Mut -> [(Text, V)] -> M Cycle
cycleFrom mut m = Cycle
  <$> pure (fEnum "trade_id" "A" m) <*> fInt "cycle" 0 m <*> fFloat "entry_price" 0 m
  <*> fFloat "exit_price" 0 m <*> fFloat "volume" 0 m <*> fFloat "gross_profit" 0 m
  <*> fFloat "fees" 0 m <*> fFloat "net_profit" 0 m <*> fFloat "entry_fee" 0 m
  <*> fFloat "exit_fee" 0 m <*> fFloat "quote_fee" 0 m <*> fFloat "settled_usd" 0 m
  <*> fFloat "entry_time" 0 m <*> fFloat "exit_time" 0 m <*> pure (fBool "from_recovery" m)
  <*> fRegime mut m
#ifdef MUTANTS
  <*> pure False
#endif

emptySt :: St
emptySt = St
  { sMarket = 0, sMarketRaw = VNil, sNow = 0, sOrders = [], sRecs = [], sCycles = Seq.empty
  , sCycleA = 1, sCycleB = 1, sNextOrderId = 1, sNextRecoveryId = 1
  , sTotalProfit = 0, sTotalSettled = 0, sTotalFees = 0, sTodayLoss = 0, sRoundTrips = 0
  , sS2EnteredAt = VNil, sLastPriceUpdateAt = VNil, sLossesA = 0, sLossesB = 0
  , sCooldownA = 0, sCooldownB = 0, sLongOnly = False, sShortOnly = False, sModeSource = "none"
  , sRefreshesA = 0, sRefreshesB = 0, sLastDirA = VNil, sLastDirB = VNil
  , sRefreshCooldownA = 0, sRefreshCooldownB = 0, sProfitPctRuntime = 1.0 }

-- | One setter per top-level key, shared by from_dict and patch's "set".
setField :: Mut -> Text -> V -> St -> M St
setField mut k v st = annot k $ case k of
  "market_price" -> (\x -> st { sMarket = x, sMarketRaw = VNil }) <$> pyFloat v   -- from_dict float()s
  "now" -> (\x -> st { sNow = x }) <$> pyFloat v
  "orders" -> do ms <- listItems k v; os <- mapM (orderFrom mut) ms; pure st { sOrders = os }
  "recovery_orders" -> do ms <- listItems k v; rs <- mapM (recoveryFrom mut) ms; pure st { sRecs = rs }
  "completed_cycles" -> do ms <- listItems k v; cs <- mapM (cycleFrom mut) ms; pure st { sCycles = Seq.fromList cs }
  "cycle_a" -> (\x -> st { sCycleA = x }) <$> pyInt v
  "cycle_b" -> (\x -> st { sCycleB = x }) <$> pyInt v
  "next_order_id" -> (\x -> st { sNextOrderId = x }) <$> pyInt v
  "next_recovery_id" -> (\x -> st { sNextRecoveryId = x }) <$> pyInt v
  "total_profit" -> (\x -> st { sTotalProfit = x }) <$> pyFloat v
  "total_settled_usd" -> (\x -> st { sTotalSettled = x }) <$> pyFloat v
  "total_fees" -> (\x -> st { sTotalFees = x }) <$> pyFloat v
  "today_realized_loss" -> (\x -> st { sTodayLoss = x }) <$> pyFloat v
  "total_round_trips" -> (\x -> st { sRoundTrips = x }) <$> pyInt v
  "s2_entered_at" -> pure st { sS2EnteredAt = v }
  "last_price_update_at" -> pure st { sLastPriceUpdateAt = v }
  "consecutive_losses_a" -> (\x -> st { sLossesA = x }) <$> pyInt v
  "consecutive_losses_b" -> (\x -> st { sLossesB = x }) <$> pyInt v
  "cooldown_until_a" -> (\x -> st { sCooldownA = x }) <$> pyFloat v
  "cooldown_until_b" -> (\x -> st { sCooldownB = x }) <$> pyFloat v
  "long_only" -> pure st { sLongOnly = truthy v }
  "short_only" -> pure st { sShortOnly = truthy v }
  "mode_source" ->
    let s = T.toLower (pyStrip (pyStr v))
    in pure st { sModeSource = if s `elem` ["none", "balance", "regime"] then s else "none" }
  "consecutive_refreshes_a" -> (\x -> st { sRefreshesA = x }) <$> pyInt v
  "consecutive_refreshes_b" -> (\x -> st { sRefreshesB = x }) <$> pyInt v
  "last_refresh_direction_a" -> pure st { sLastDirA = v }
  "last_refresh_direction_b" -> pure st { sLastDirB = v }
  "refresh_cooldown_until_a" -> (\x -> st { sRefreshCooldownA = x }) <$> pyFloat v
  "refresh_cooldown_until_b" -> (\x -> st { sRefreshCooldownB = x }) <$> pyFloat v
  "profit_pct_runtime" -> (\x -> st { sProfitPctRuntime = x }) <$> pyFloat v
  _ -> pure st

stateKeys :: [Text]
stateKeys =
  [ "market_price", "now", "orders", "recovery_orders", "completed_cycles", "cycle_a", "cycle_b"
  , "next_order_id", "next_recovery_id", "total_profit", "total_settled_usd", "total_fees"
  , "today_realized_loss", "total_round_trips", "s2_entered_at", "last_price_update_at"
  , "consecutive_losses_a", "consecutive_losses_b", "cooldown_until_a", "cooldown_until_b"
  , "long_only", "short_only", "mode_source", "consecutive_refreshes_a", "consecutive_refreshes_b"
  , "last_refresh_direction_a", "last_refresh_direction_b", "refresh_cooldown_until_a"
  , "refresh_cooldown_until_b", "profit_pct_runtime" ]

-- | Python's from_dict.
fromDict :: Mut -> V -> M St
fromDict mut (VMap m) = do
  let base = if MUTANT_IN(CycleDefaultZero, mut) then emptySt { sCycleA = 0, sCycleB = 0 } else emptySt
      base2 = if MUTANT_IN(ModeSourceDefaultEmpty, mut) then base { sModeSource = "" } else base
  st0 <- foldlM' base2 stateKeys
  let st1 = if isJust (lookupT "total_settled_usd" m) then st0 else st0 { sTotalSettled = sTotalProfit st0 }
  st2 <- if isJust (lookupT "profit_pct_runtime" m) then pure st1
         else case lookupT "profit_pct" m of
           Just v | not MUTANT_IN(ProfitPctNoFallback, mut) -> (\x -> st1 { sProfitPctRuntime = x }) <$> annot "profit_pct" (pyFloat v)
           _ -> pure st1
#ifdef MUTANTS
  pure (if MUTANT_IN(CrashHugeInt, mut) && hugeInts st2 then crashWith "arithmetic overflow in Int64 field" st2 else st2)
#else
  pure st2
#endif
  where
    foldlM' !st [] = Right st
    foldlM' !st (k:ks) = case lookupT k m of
      Nothing -> foldlM' st ks
      Just v -> setField mut k v st >>= \st' -> foldlM' st' ks
fromDict _ v = Left ("state must be a map, not " ++ typeName v)

#ifdef MUTANTS
hugeInts :: St -> Bool
hugeInts st = any (>= 9223372036854775808) ([sCycleA st, sCycleB st, sNextOrderId st, sNextRecoveryId st, sRoundTrips st]
  ++ map oLocalId (sOrders st) ++ map rRecoveryId (sRecs st))
#endif

-- to_dict --------------------------------------------------------------------------

regV :: Maybe Integer -> V
regV = maybe VNil VInt

orderV :: Order -> V
orderV o = VMap
  [ ("local_id", VInt (oLocalId o)), ("side", VStr (oSide o)), ("role", VStr (oRole o))
  , ("price", VFloat (oPrice o)), ("volume", VFloat (oVolume o)), ("trade_id", VStr (oTradeId o))
  , ("cycle", VInt (oCycle o)), ("txid", VStr (oTxid o)), ("placed_at", VFloat (oPlacedAt o))
  , ("entry_price", VFloat (oEntryPrice o)), ("entry_fee", oEntryFee o)
  , ("entry_filled_at", VFloat (oEntryFilledAt o)), ("regime_at_entry", regV (oRegime o)) ]

recoveryV :: Recovery -> V
recoveryV r = VMap
  [ ("recovery_id", VInt (rRecoveryId r)), ("side", VStr (rSide r)), ("price", VFloat (rPrice r))
  , ("volume", VFloat (rVolume r)), ("trade_id", VStr (rTradeId r)), ("cycle", VInt (rCycle r))
  , ("entry_price", VFloat (rEntryPrice r)), ("orphaned_at", VFloat (rOrphanedAt r))
  , ("entry_fee", rEntryFee r), ("entry_filled_at", VFloat (rEntryFilledAt r))
  , ("txid", VStr (rTxid r)), ("reason", VStr (rReason r)), ("regime_at_entry", regV (rRegime r)) ]

cycleV :: Cycle -> V
cycleV c = VMap
  [ ("trade_id", VStr (yTradeId c)), ("cycle", VInt (yCycle c)), ("entry_price", VFloat (yEntryPrice c))
  , ("exit_price", VFloat (yExitPrice c)), ("volume", VFloat (yVolume c)), ("gross_profit", VFloat (yGross c))
  , ("fees", VFloat (yFees c)), ("net_profit", VFloat (yNet c)), ("entry_fee", VFloat (yEntryFee c))
  , ("exit_fee", fee (yExitFee c)), ("quote_fee", if teq (yTradeId c) "A" then VFloat (yQuoteFee c) else fee (yQuoteFee c))
  , ("settled_usd", VFloat (ySettled c))
  , ("entry_time", VFloat (yEntryTime c)), ("exit_time", VFloat (yExitTime c))
  , ("from_recovery", VBool (yFromRecovery c)), ("regime_at_entry", regV (yRegime c)) ]
  where
#ifdef MUTANTS
    fee d = if yFeeAsInt c then VInt (truncate d) else VFloat d
#else
    fee = VFloat
#endif

-- | market_price as the module holds it: the float, or a PriceTick's int price as sent.
marketV :: St -> V
marketV s = case sMarketRaw s of
  VNil -> VFloat (sMarket s)
  v -> v

-- | The top-level fields in to_dict order (values built lazily).
stateFieldsV :: St -> [(Text, V)]
stateFieldsV s =
  [ ("market_price", marketV s), ("now", VFloat (sNow s))
  , ("orders", VArr (map orderV (sOrders s))), ("recovery_orders", VArr (map recoveryV (sRecs s)))
  , ("completed_cycles", VArr (map cycleV (toList (sCycles s))))
  , ("cycle_a", VInt (sCycleA s)), ("cycle_b", VInt (sCycleB s))
  , ("next_order_id", VInt (sNextOrderId s)), ("next_recovery_id", VInt (sNextRecoveryId s))
  , ("total_profit", VFloat (sTotalProfit s)), ("total_settled_usd", VFloat (sTotalSettled s))
  , ("total_fees", VFloat (sTotalFees s)), ("today_realized_loss", VFloat (sTodayLoss s))
  , ("total_round_trips", VInt (sRoundTrips s)), ("s2_entered_at", sS2EnteredAt s)
  , ("last_price_update_at", sLastPriceUpdateAt s)
  , ("consecutive_losses_a", VInt (sLossesA s)), ("consecutive_losses_b", VInt (sLossesB s))
  , ("cooldown_until_a", VFloat (sCooldownA s)), ("cooldown_until_b", VFloat (sCooldownB s))
  , ("long_only", VBool (sLongOnly s)), ("short_only", VBool (sShortOnly s))
  , ("mode_source", VStr (sModeSource s))
  , ("consecutive_refreshes_a", VInt (sRefreshesA s)), ("consecutive_refreshes_b", VInt (sRefreshesB s))
  , ("last_refresh_direction_a", sLastDirA s), ("last_refresh_direction_b", sLastDirB s)
  , ("refresh_cooldown_until_a", VFloat (sRefreshCooldownA s))
  , ("refresh_cooldown_until_b", VFloat (sRefreshCooldownB s))
  , ("profit_pct_runtime", VFloat (sProfitPctRuntime s)) ]

toDict :: St -> V
toDict = VMap . stateFieldsV

-- Config -----------------------------------------------------------------------------

-- | A number field of a request or payload (Python arithmetic accepts int, float, bool).
numField :: Text -> V -> M Double
numField k v = case vNum v of
  Just d -> Right d
  Nothing -> Left (T.unpack k ++ ": expected a number, got " ++ typeName v)

intCfg :: Text -> V -> M Integer
intCfg k v = case v of
  VInt i -> Right i
  VBool b -> Right (if b then 1 else 0)
  VFloat d | not (isNaN d || isInfinite d) && fromInteger (truncate d) == d -> Right (truncate d)
  _ -> Left (T.unpack k ++ ": expected an integer, got " ++ typeName v)

-- | EngineConfig(**mapping): any subset of the fields; unknown keys are ignored.
parseConfig :: V -> M Config
parseConfig VNil = Right defaultConfig
parseConfig (VMap kvs) = go defaultConfig kvs
  where
    go !c [] = Right c
    go !c ((k, v):rest) = set c k v >>= \c' -> go c' rest
    num k v f = f <$> numField k v
    optNum k v f = case v of
      VNil -> Right (f Nothing)
      _ -> f . Just <$> numField k v
    set c k v = case k of
      "entry_pct" -> num k v (\x -> c { cEntryPct = x })
      "entry_pct_a" -> optNum k v (\x -> c { cEntryPctA = x })
      "entry_pct_b" -> optNum k v (\x -> c { cEntryPctB = x })
      "profit_pct" -> num k v (\x -> c { cProfitPct = x })
      "refresh_pct" -> num k v (\x -> c { cRefreshPct = x })
      "order_size_usd" -> num k v (\x -> c { cOrderSizeUsd = x })
      "price_decimals" -> case v of
        VInt i -> Right c { cPriceDecimals = i }
        VBool b -> Right c { cPriceDecimals = if b then 1 else 0 }
        _ -> Left "price_decimals: TypeError: round() needs an integer number of digits"
      "volume_decimals" -> (\x -> c { cVolumeDecimals = x }) <$> intCfg k v
      "min_volume" -> num k v (\x -> c { cMinVolume = x })
      "min_cost_usd" -> num k v (\x -> c { cMinCostUsd = x })
      "maker_fee_pct" -> num k v (\x -> c { cMakerFeePct = x })
      "stale_price_max_age_sec" -> Right c   -- not used by the reducer
      "s1_orphan_after_sec" -> num k v (\x -> c { cS1OrphanAfter = x })
      "s2_orphan_after_sec" -> num k v (\x -> c { cS2OrphanAfter = x })
      "loss_backoff_start" -> (\x -> c { cLossBackoffStart = x }) <$> intCfg k v
      "loss_cooldown_start" -> (\x -> c { cLossCooldownStart = x }) <$> intCfg k v
      "loss_cooldown_sec" -> num k v (\x -> c { cLossCooldownSec = x })
      "reentry_base_cooldown_sec" -> num k v (\x -> c { cReentryBaseCooldown = x })
      "backoff_factor" -> num k v (\x -> c { cBackoffFactor = x })
      "backoff_max_multiplier" -> num k v (\x -> c { cBackoffMaxMult = x })
      "max_consecutive_refreshes" -> (\x -> c { cMaxConsecRefreshes = x }) <$> intCfg k v
      "refresh_cooldown_sec" -> num k v (\x -> c { cRefreshCooldownSec = x })
      -- kept as given: the reducer int()s it when orphaning (2.0 and "2" work; section 9)
      "max_recovery_slots" -> Right c { cMaxRecoverySlots = v }
      "sticky_mode_enabled" -> Right c { cSticky = truthy v }
      _ -> Right c
parseConfig v = Left ("config must be a map, not " ++ typeName v)

-- Events -------------------------------------------------------------------------------

-- | An event from its type name and payload map.
parseEvent :: Text -> V -> M Event
parseEvent ty (VMap p) = case ty of
  "PriceTick" -> PriceTick <$> nv "price" <*> n "timestamp"
  "TimerTick" -> TimerTick <$> n "timestamp"
  "FillEvent" -> FillEvent <$> r "order_local_id" <*> r "txid" <*> n "price" <*> n "volume" <*> nv "fee"
                   <*> n "timestamp" <* r "side"
  "RecoveryFillEvent" -> RecoveryFillEvent <$> r "recovery_id" <*> r "txid" <*> n "price" <*> n "volume"
                   <*> nv "fee" <*> n "timestamp" <* r "side"
  "RecoveryCancelEvent" -> RecoveryCancelEvent <$> r "recovery_id" <*> n "timestamp" <* r "txid"
  _ -> Left ("unknown event type " ++ show (T.unpack ty))
  where
    r k = maybe (Left ("event payload misses " ++ T.unpack k)) Right (lookupT k p)
    n k = r k >>= numField k
    nv k = r k >>= \v -> v <$ numField k v   -- a number, kept as sent (int or float)
parseEvent _ v = Left ("event payload must be a map, not " ++ typeName v)

-- | The JSON transport's bare payload: the type is inferred from the keys.
inferEvent :: V -> M Event
inferEvent v@(VMap p) = parseEvent ty v
  where
    has = all (\k -> isJust (lookupT k p))
    ty | has ["order_local_id", "txid", "side", "price", "volume", "fee", "timestamp"] = "FillEvent"
       | has ["recovery_id", "txid", "side", "price", "volume", "fee", "timestamp"] = "RecoveryFillEvent"
       | has ["recovery_id", "txid", "timestamp"] = "RecoveryCancelEvent"
       | map fst p == ["timestamp"] = "TimerTick"
       | has ["price", "timestamp"] = "PriceTick"
       | otherwise = "unknown"
inferEvent v = Left ("event must be a map, not " ++ typeName v)

-- Actions -------------------------------------------------------------------------------

actionPayload :: Action -> (Text, V)
actionPayload a = case a of
  PlaceOrder lid side role price vol trade cyc reason -> ("PlaceOrderAction", VMap
    [ ("local_id", VInt lid), ("side", VStr side), ("role", VStr role), ("price", VFloat price)
    , ("volume", VFloat vol), ("trade_id", VStr trade), ("cycle", VInt cyc), ("post_only", VBool True)
    , ("reason", VStr reason) ])
  CancelOrder lid txid reason -> ("CancelOrderAction", VMap
    [ ("local_id", VInt lid), ("txid", VStr txid), ("reason", VStr reason) ])
  OrphanOrder lid rid reason -> ("OrphanOrderAction", VMap
    [ ("local_id", VInt lid), ("recovery_id", VInt rid), ("reason", VStr reason) ])
  BookCycle trade cyc net gross fees settled fromRec -> ("BookCycleAction", VMap
    [ ("trade_id", VStr trade), ("cycle", VInt cyc), ("net_profit", VFloat net), ("gross_profit", VFloat gross)
    , ("fees", VFloat fees), ("settled_usd", VFloat settled), ("from_recovery", VBool fromRec) ])

actionTyped :: Action -> V
actionTyped a = let (t, p) = actionPayload a in VMap [("type", VStr t), ("payload", p)]

-- Deltas ------------------------------------------------------------------------------------

-- | The canonical delta from old to new. completed_cycles only ever grows at its end
-- inside the reducer, so its delta is the new tail (O(new items)); the other fields
-- are compared on the typed state, with the diff's exact equality (type for type,
-- bit for bit, NaN equal to NaN: what 'vEq' says of their wire form), and only the
-- changed ones are turned into wire values.
stateDelta :: St -> St -> V
stateDelta old new = VMap (nonEmpty "set" sets ++ nonEmpty "append" apps)
  where
    nonEmpty k xs = if null xs then [] else [(k, VMap xs)]
    oldLen = Seq.length (sCycles old)
    newLen = Seq.length (sCycles new)
    (cycS, cycA)
      | newLen == oldLen = ([], [])   -- most steps book nothing: no need to split the sequence
      | newLen > oldLen =
          ([], [("completed_cycles", VArr (map cycleV (toList (Seq.drop oldLen (sCycles new)))))])
      | otherwise = ([("completed_cycles", VArr (map cycleV (toList (sCycles new))))], [])
    (ordS, ordA) = listDelta "orders" orderEq orderV (sOrders old) (sOrders new)
    (recS, recA) = listDelta "recovery_orders" recoveryEq recoveryV (sRecs old) (sRecs new)
    sets = val "market_price" marketV $ dbl "now" sNow $ ordS ++ recS ++ cycS
      ++ (int "cycle_a" sCycleA $ int "cycle_b" sCycleB $ int "next_order_id" sNextOrderId
      $ int "next_recovery_id" sNextRecoveryId $ dbl "total_profit" sTotalProfit
      $ dbl "total_settled_usd" sTotalSettled $ dbl "total_fees" sTotalFees
      $ dbl "today_realized_loss" sTodayLoss $ int "total_round_trips" sRoundTrips
      $ val "s2_entered_at" sS2EnteredAt $ val "last_price_update_at" sLastPriceUpdateAt
      $ int "consecutive_losses_a" sLossesA $ int "consecutive_losses_b" sLossesB
      $ dbl "cooldown_until_a" sCooldownA $ dbl "cooldown_until_b" sCooldownB
      $ bool "long_only" sLongOnly $ bool "short_only" sShortOnly $ txt "mode_source" sModeSource
      $ int "consecutive_refreshes_a" sRefreshesA $ int "consecutive_refreshes_b" sRefreshesB
      $ val "last_refresh_direction_a" sLastDirA $ val "last_refresh_direction_b" sLastDirB
      $ dbl "refresh_cooldown_until_a" sRefreshCooldownA $ dbl "refresh_cooldown_until_b" sRefreshCooldownB
      $ dbl "profit_pct_runtime" sProfitPctRuntime [])
    apps = ordA ++ recA ++ cycA
    -- inlined at each field, so f is a plain field read (no boxing), and the
    -- rest of the list is built first (no thunk per field)
    dbl k f !rest = let b = f new in if dEq (f old) b then rest else (k, VFloat b) : rest
    int k f !rest = let b = f new; a = f old in if same a b || a == b then rest else (k, VInt b) : rest
    bool k f !rest = let b = f new in if f old == b then rest else (k, VBool b) : rest
    txt k f !rest = let b = f new in if teq (f old) b then rest else (k, VStr b) : rest
    val k f !rest = let b = f new in if vEq (f old) b then rest else (k, b) : rest
    {-# INLINE dbl #-}
    {-# INLINE int #-}
    {-# INLINE bool #-}
    {-# INLINE txt #-}
    {-# INLINE val #-}

-- | A list field's delta: append when the new list is the old one plus a tail.
listDelta :: Text -> (a -> a -> Bool) -> (a -> V) -> [a] -> [a] -> ([(Text, V)], [(Text, V)])
listDelta k eq toV xs ys = go xs ys
  where
    go as bs | same as bs = ([], [])
    go (a:as) (b:bs) | same a b || eq a b = go as bs
    go [] [] = ([], [])
    go [] post = ([], [(k, VArr (map toV post))])
    go _ _ = ([(k, VArr (map toV ys))], [])

-- | The same heap object: equal by any reflexive equality. orderEq, recoveryEq and
-- Integer's (==) are (dEq has NaN equal to NaN); vEq is not (a map with a repeated
-- key can differ from itself), so V fields never take this shortcut. A quick yes
-- for what the reducer left untouched; a no decides nothing.
same :: a -> a -> Bool
same a b = isTrue# (reallyUnsafePtrEquality# a b)
{-# INLINE same #-}

-- | Field-wise equality of orders / recoveries as their wire maps compare.
orderEq :: Order -> Order -> Bool
orderEq a b = oLocalId a == oLocalId b && teq (oSide a) (oSide b) && teq (oRole a) (oRole b)
  && dEq (oPrice a) (oPrice b) && dEq (oVolume a) (oVolume b) && teq (oTradeId a) (oTradeId b)
  && oCycle a == oCycle b && teq (oTxid a) (oTxid b) && dEq (oPlacedAt a) (oPlacedAt b)
  && dEq (oEntryPrice a) (oEntryPrice b) && vEq (oEntryFee a) (oEntryFee b)
  && dEq (oEntryFilledAt a) (oEntryFilledAt b) && oRegime a == oRegime b

recoveryEq :: Recovery -> Recovery -> Bool
recoveryEq a b = rRecoveryId a == rRecoveryId b && teq (rSide a) (rSide b) && dEq (rPrice a) (rPrice b)
  && dEq (rVolume a) (rVolume b) && teq (rTradeId a) (rTradeId b) && rCycle a == rCycle b
  && dEq (rEntryPrice a) (rEntryPrice b) && dEq (rOrphanedAt a) (rOrphanedAt b)
  && vEq (rEntryFee a) (rEntryFee b) && dEq (rEntryFilledAt a) (rEntryFilledAt b)
  && teq (rTxid a) (rTxid b) && teq (rReason a) (rReason b) && rRegime a == rRegime b

-- | Apply a delta (a patch, or replaying a step) to a session's state.
applyDelta :: Mut -> V -> St -> M St
applyDelta mut (VMap d) st0 = do
  st1 <- case lookupT "set" d of
    Nothing -> Right st0
    Just VNil -> Right st0
    Just (VMap kvs) -> foldlE (\st (k, v) -> setField mut k v st) st0 kvs
    Just v -> Left ("delta set must be a map, not " ++ typeName v)
  case lookupT "append" d of
    Nothing -> Right st1
    Just VNil -> Right st1
    Just (VMap kvs) -> foldlE app st1 kvs
    Just v -> Left ("delta append must be a map, not " ++ typeName v)
  where
    app st (k, v) = annot k $ case v of
      VArr _ -> do
        items <- listItems k v
        case k of
          "orders" -> (\os -> st { sOrders = sOrders st ++ os }) <$> mapM (orderFrom mut) items
          "recovery_orders" -> (\rs -> st { sRecs = sRecs st ++ rs }) <$> mapM (recoveryFrom mut) items
          "completed_cycles" -> (\cs -> st { sCycles = sCycles st <> Seq.fromList cs }) <$> mapM (cycleFrom mut) items
          _ -> Left "append is only for list fields"
      _ -> Left ("append items must be a list, not " ++ typeName v)
applyDelta _ v _ = Left ("delta must be a map, not " ++ typeName v)

foldlE :: (b -> a -> M b) -> b -> [a] -> M b
foldlE _ !z [] = Right z
foldlE f !z (x:xs) = f z x >>= \z' -> foldlE f z' xs
