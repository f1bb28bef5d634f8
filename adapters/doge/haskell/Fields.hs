{-# LANGUAGE BangPatterns, OverloadedStrings, MagicHash, CPP #-}
-- | The field tables: every wire field of the state and of its orders, recoveries
-- and completed cycles, once, in to_dict order, each with how it is written
-- (to_dict), read (from_dict's leniency, also patch's "set") and compared (the
-- delta's exact equality). Wire's from_dict, to_dict, delta and patch, the fast
-- patch path of Server and MsgPack's interned keys are all driven by these lists,
-- so adding a field is one entry here, besides its slot in the record (Types) and
-- its default in the empty record below (-Wall -Werror makes a missing one a
-- build error).
module Fields
  ( Field(..), ListOps(..), Change(..), M, annot
  , stateTable, stateFields, orderFields, recoveryFields, cycleFields, fieldNames
  , emptySt, emptyOrder, emptyRecovery, emptyCycle
  , recordV, recordFrom, recordFromValues, recordEq, listItems, typeName, normRegime, same
  ) where

import qualified Data.Text as T
import Data.Text (Text)
import qualified Data.Sequence as Seq
import Data.Foldable (toList)
import Data.List (nub)
import GHC.Exts (reallyUnsafePtrEquality#, isTrue#)
import Value
import Types
#include "mutants.h"
#ifdef MUTANTS
import Mutants
#endif

type M = Either String

annot :: Text -> M a -> M a
annot k (Left e) = Left (T.unpack k ++ ": " ++ e)
annot _ r = r

-- | One wire field of a record s.
data Field s = Field
  { fKey :: Text
  , fGet :: s -> V                    -- ^ to_dict's value
  , fSet :: Mut -> V -> s -> M s      -- ^ from_dict of a present key (errors are annotated by the caller)
  , fEq :: s -> s -> Bool             -- ^ the diff's exact equality of the two values ('vEq' of their wire form)
  , fList :: Maybe (ListOps s) }      -- ^ list fields: their delta and patch's "append"

-- | What a list field adds to the plain reading: its delta (old, new) and patch's
-- "append" of items (the list's entries that are maps).
data ListOps s = ListOps { lDelta :: s -> s -> Change, lAppend :: Mut -> [[(Text, V)]] -> s -> M s }

data Change = Same | SetTo V | AppendItems V

-- Field kinds ------------------------------------------------------------------------

plain :: Text -> (s -> V) -> (Mut -> V -> s -> M s) -> (s -> s -> Bool) -> Field s
plain k get set eq = Field k get set eq Nothing

-- | float(value); the wire form a float.
dbl :: Text -> (s -> Double) -> (Double -> s -> s) -> Field s
dbl k get set = plain k (VFloat . get) (\_ v x -> (`set` x) <$> pyFloat v) (\a b -> dEq (get a) (get b))
{-# INLINE dbl #-}

-- | int(value); the wire form an int.
int :: Text -> (s -> Integer) -> (Integer -> s -> s) -> Field s
int k get set = plain k (VInt . get) (\_ v x -> (`set` x) <$> pyInt v)
  (\a b -> let !p = get a; !q = get b in same p q || p == q)
{-# INLINE int #-}

-- | bool(value).
bool :: Text -> (s -> Bool) -> (Bool -> s -> s) -> Field s
bool k get set = plain k (VBool . get) (\_ v x -> pure (set (truthy v) x)) (\a b -> get a == get b)

-- | Kept as sent.
raw :: Text -> (s -> V) -> (V -> s -> s) -> Field s
raw k get set = plain k get (\_ v x -> pure (set v x)) (\a b -> vEq (get a) (get b))

-- | side, role, trade_id, txid, reason: None or "" -> the default, else str() of the value.
enum :: Text -> Text -> (s -> Text) -> (Text -> s -> s) -> Field s
enum k d get set = plain k (VStr . get) (\_ v x -> pure (set (enumOr v) x)) (\a b -> teq (get a) (get b))
  where
    enumOr v = case v of
      VNil -> d
      VStr t | T.null t -> d
      _ -> pyStr v

-- | regime_at_entry: section 2's normalisation; None on the wire when there is none.
regime :: (s -> Maybe Integer) -> (Maybe Integer -> s -> s) -> Field s
regime get set = plain "regime_at_entry" (maybe VNil VInt . get) (\mut v x -> (`set` x) <$> normRegime mut v)
  (\a b -> get a == get b)

-- | A list of records: the items that are maps, each read with its table.
records :: Text -> [Field a] -> a -> (s -> [a]) -> ([a] -> s -> s) -> Field s
records k fields empty get set = Field k (VArr . map (recordV fields) . get) setAll eq (Just (ListOps delta app))
  where
    eqItem = recordEq fields
    setAll mut v x = do ms <- listItems k v; ys <- mapM (recordFrom fields empty mut) ms; pure (set ys x)
    eq a b = case listChange eqItem (recordV fields) (get a) (get b) of
      Same -> True
      _ -> False
    app mut items x = (\ys -> set (get x ++ ys) x) <$> mapM (recordFrom fields empty mut) items
    delta a b = listChange eqItem (recordV fields) (get a) (get b)

-- | A list's change: none, a tail appended to the old list, or a new list.
listChange :: (a -> a -> Bool) -> (a -> V) -> [a] -> [a] -> Change
listChange eq toV xs ys = go xs ys
  where
    go ps qs | same ps qs = Same
    go (p : ps) (q : qs) | same p q || eq p q = go ps qs
    go [] [] = Same
    go [] post = AppendItems (VArr (map toV post))
    go _ _ = SetTo (VArr (map toV ys))

-- Generic record codecs -------------------------------------------------------------------

-- | to_dict of a record, built in full (the encoder reads all of it: no thunk per field).
recordV :: [Field s] -> s -> V
recordV fields x = VMap (go fields)
  where
    go [] = []
    go (f : fs) = let !v = fGet f x; !rest = go fs in (fKey f, v) : rest

-- | from_dict of a record: each field the map has (its first occurrence) read onto
-- the empty record, in table order.
recordFrom :: [Field s] -> s -> Mut -> [(Text, V)] -> M s
recordFrom fields empty mut m = go empty fields
  where
    go !x [] = Right x
    go !x (f : fs) = case lookupT (fKey f) m of
      Nothing -> go x fs
      Just v -> annot (fKey f) (fSet f mut v x) >>= \x' -> go x' fs

-- | The same reading from the values of every field, in table order (what the
-- canonical encoder writes: the fast patch path reads them by position).
recordFromValues :: [Field s] -> s -> Mut -> [V] -> M s
recordFromValues fields empty mut = go empty fields
  where
    go !x (f : fs) (v : vs) = annot (fKey f) (fSet f mut v x) >>= \x' -> go x' fs vs
    go !x _ _ = Right x

recordEq :: [Field s] -> s -> s -> Bool
recordEq fields a b = go fields
  where
    go [] = True
    go (f : fs) = fEq f a b && go fs

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

-- | The same heap object: equal by any reflexive equality. Integer's (==) and the
-- record equalities are (dEq has NaN equal to NaN); vEq is not (a map with a
-- repeated key can differ from itself), so V fields never take this shortcut. A
-- quick yes for what the reducer left untouched; a no decides nothing.
same :: a -> a -> Bool
same a b = isTrue# (reallyUnsafePtrEquality# a b)
{-# INLINE same #-}

-- The tables ------------------------------------------------------------------------------

-- | The state's fields, in to_dict order, as a right fold ('stateFields' is it
-- applied to (:) and []). Code that walks them with a known function (the delta,
-- on every step) gets each entry inlined, as straight-line code, not a loop of
-- unknown calls.
stateTable :: (Field St -> r -> r) -> r -> r
stateTable c n =
    c (plain "market_price" marketV   -- from_dict float()s; a PriceTick keeps an int price as sent
        (\_ v st -> (\x -> st { sMarket = x, sMarketRaw = VNil }) <$> pyFloat v)
        (\a b -> vEq (marketV a) (marketV b)))
  $ c (dbl "now" sNow (\x s -> s { sNow = x }))
  $ c (records "orders" orderFields emptyOrder sOrders (\x s -> s { sOrders = x }))
  $ c (records "recovery_orders" recoveryFields emptyRecovery sRecs (\x s -> s { sRecs = x }))
  $ c completedCycles
  $ c (int "cycle_a" sCycleA (\x s -> s { sCycleA = x }))
  $ c (int "cycle_b" sCycleB (\x s -> s { sCycleB = x }))
  $ c (int "next_order_id" sNextOrderId (\x s -> s { sNextOrderId = x }))
  $ c (int "next_recovery_id" sNextRecoveryId (\x s -> s { sNextRecoveryId = x }))
  $ c (dbl "total_profit" sTotalProfit (\x s -> s { sTotalProfit = x }))
  $ c (dbl "total_settled_usd" sTotalSettled (\x s -> s { sTotalSettled = x }))
  $ c (dbl "total_fees" sTotalFees (\x s -> s { sTotalFees = x }))
  $ c (dbl "today_realized_loss" sTodayLoss (\x s -> s { sTodayLoss = x }))
  $ c (int "total_round_trips" sRoundTrips (\x s -> s { sRoundTrips = x }))
  $ c (raw "s2_entered_at" sS2EnteredAt (\x s -> s { sS2EnteredAt = x }))
  $ c (raw "last_price_update_at" sLastPriceUpdateAt (\x s -> s { sLastPriceUpdateAt = x }))
  $ c (int "consecutive_losses_a" sLossesA (\x s -> s { sLossesA = x }))
  $ c (int "consecutive_losses_b" sLossesB (\x s -> s { sLossesB = x }))
  $ c (dbl "cooldown_until_a" sCooldownA (\x s -> s { sCooldownA = x }))
  $ c (dbl "cooldown_until_b" sCooldownB (\x s -> s { sCooldownB = x }))
  $ c (bool "long_only" sLongOnly (\x s -> s { sLongOnly = x }))
  $ c (bool "short_only" sShortOnly (\x s -> s { sShortOnly = x }))
  $ c (plain "mode_source" (VStr . sModeSource)
        (\_ v st -> let s = T.toLower (pyStrip (pyStr v))
                    in pure st { sModeSource = if s `elem` ["none", "balance", "regime"] then s else "none" })
        (\a b -> teq (sModeSource a) (sModeSource b)))
  $ c (int "consecutive_refreshes_a" sRefreshesA (\x s -> s { sRefreshesA = x }))
  $ c (int "consecutive_refreshes_b" sRefreshesB (\x s -> s { sRefreshesB = x }))
  $ c (raw "last_refresh_direction_a" sLastDirA (\x s -> s { sLastDirA = x }))
  $ c (raw "last_refresh_direction_b" sLastDirB (\x s -> s { sLastDirB = x }))
  $ c (dbl "refresh_cooldown_until_a" sRefreshCooldownA (\x s -> s { sRefreshCooldownA = x }))
  $ c (dbl "refresh_cooldown_until_b" sRefreshCooldownB (\x s -> s { sRefreshCooldownB = x }))
  $ c (dbl "profit_pct_runtime" sProfitPctRuntime (\x s -> s { sProfitPctRuntime = x }))
  $ n
{-# INLINE stateTable #-}

stateFields :: [Field St]
stateFields = stateTable (:) []

-- | market_price as the module holds it: the float, or a PriceTick's int price as sent.
marketV :: St -> V
marketV s = case sMarketRaw s of
  VNil -> VFloat (sMarket s)
  v -> v

-- | completed_cycles: a 'records' field held as a sequence. It only ever grows at
-- its end inside the reducer, so its delta is the new tail (O(new items)).
completedCycles :: Field St
completedCycles = Field k (VArr . map (recordV cycleFields) . toList . sCycles) setAll eq (Just (ListOps delta app))
  where
    k = "completed_cycles"
    readAll mut = mapM (recordFrom cycleFields emptyCycle mut)
    setAll mut v st = do ms <- listItems k v; cs <- readAll mut ms; pure st { sCycles = Seq.fromList cs }
    eq a b = Seq.length (sCycles a) == Seq.length (sCycles b)
             && and (Seq.zipWith (\p q -> same p q || recordEq cycleFields p q) (sCycles a) (sCycles b))
    app mut items st = (\cs -> st { sCycles = sCycles st <> Seq.fromList cs }) <$> readAll mut items
    delta old new
      | newLen == oldLen = Same   -- most steps book nothing: no need to split the sequence
      | newLen > oldLen = AppendItems (VArr (map (recordV cycleFields) (toList (Seq.drop oldLen (sCycles new)))))
      | otherwise = SetTo (VArr (map (recordV cycleFields) (toList (sCycles new))))
      where
        oldLen = Seq.length (sCycles old)
        newLen = Seq.length (sCycles new)

orderFields :: [Field Order]
orderFields =
  [ int "local_id" oLocalId (\x o -> o { oLocalId = x })
  , enum "side" "buy" oSide (\x o -> o { oSide = x })
  , enum "role" "entry" oRole (\x o -> o { oRole = x })
  , dbl "price" oPrice (\x o -> o { oPrice = x })
  , dbl "volume" oVolume (\x o -> o { oVolume = x })
  , enum "trade_id" "A" oTradeId (\x o -> o { oTradeId = x })
  , int "cycle" oCycle (\x o -> o { oCycle = x })
  , enum "txid" "" oTxid (\x o -> o { oTxid = x })
  , dbl "placed_at" oPlacedAt (\x o -> o { oPlacedAt = x })
  , dbl "entry_price" oEntryPrice (\x o -> o { oEntryPrice = x })
  , floatedFee "entry_fee" oEntryFee (\x o -> o { oEntryFee = x })
  , dbl "entry_filled_at" oEntryFilledAt (\x o -> o { oEntryFilledAt = x })
  , regime oRegime (\x o -> o { oRegime = x }) ]

recoveryFields :: [Field Recovery]
recoveryFields =
  [ int "recovery_id" rRecoveryId (\x r -> r { rRecoveryId = x })
  , enum "side" "buy" rSide (\x r -> r { rSide = x })
  , dbl "price" rPrice (\x r -> r { rPrice = x })
  , dbl "volume" rVolume (\x r -> r { rVolume = x })
  , enum "trade_id" "A" rTradeId (\x r -> r { rTradeId = x })
  , int "cycle" rCycle (\x r -> r { rCycle = x })
  , dbl "entry_price" rEntryPrice (\x r -> r { rEntryPrice = x })
  , dbl "orphaned_at" rOrphanedAt (\x r -> r { rOrphanedAt = x })
  , floatedFee "entry_fee" rEntryFee (\x r -> r { rEntryFee = x })
  , dbl "entry_filled_at" rEntryFilledAt (\x r -> r { rEntryFilledAt = x })
  , enum "txid" "" rTxid (\x r -> r { rTxid = x })
  , enum "reason" "stale" rReason (\x r -> r { rReason = x })
  , regime rRegime (\x r -> r { rRegime = x }) ]

-- | An entry fee: held as the number the module holds (an entry fill keeps an int
-- fee as sent), float()ed when read from a state.
floatedFee :: Text -> (s -> V) -> (V -> s -> s) -> Field s
floatedFee k get set = plain k get (\_ v x -> (\d -> set (VFloat d) x) <$> pyFloat v) (\a b -> vEq (get a) (get b))

cycleFields :: [Field Cycle]
cycleFields =
  [ enum "trade_id" "A" yTradeId (\x c -> c { yTradeId = x })
  , int "cycle" yCycle (\x c -> c { yCycle = x })
  , dbl "entry_price" yEntryPrice (\x c -> c { yEntryPrice = x })
  , dbl "exit_price" yExitPrice (\x c -> c { yExitPrice = x })
  , dbl "volume" yVolume (\x c -> c { yVolume = x })
  , dbl "gross_profit" yGross (\x c -> c { yGross = x })
  , dbl "fees" yFees (\x c -> c { yFees = x })
  , dbl "net_profit" yNet (\x c -> c { yNet = x })
  , dbl "entry_fee" yEntryFee (\x c -> c { yEntryFee = x })
  , (dbl "exit_fee" yExitFee (\x c -> c { yExitFee = x })) { fGet = \c -> bookedFee c (yExitFee c) }
  , (dbl "quote_fee" yQuoteFee (\x c -> c { yQuoteFee = x }))
      { fGet = \c -> if teq (yTradeId c) "A" then VFloat (yQuoteFee c) else bookedFee c (yQuoteFee c) }
  , dbl "settled_usd" ySettled (\x c -> c { ySettled = x })
  , dbl "entry_time" yEntryTime (\x c -> c { yEntryTime = x })
  , dbl "exit_time" yExitTime (\x c -> c { yExitTime = x })
  , bool "from_recovery" yFromRecovery (\x c -> c { yFromRecovery = x })
  , regime yRegime (\x c -> c { yRegime = x }) ]

-- | A fee the booking float()ed (section 9).
bookedFee :: Cycle -> Double -> V
#ifdef MUTANTS
bookedFee c d = if yFeeAsInt c then VInt (truncate d) else VFloat d   -- fee_int_booked_as_int
#else
bookedFee _ = VFloat
#endif

-- | Every field name of the tables (the decoder interns them).
fieldNames :: [Text]
fieldNames = nub (map fKey stateFields ++ map fKey orderFields ++ map fKey recoveryFields ++ map fKey cycleFields)

-- The empty records: from_dict's defaults for a missing key ------------------------------

emptySt :: St
emptySt = St
  { sMarket = 0, sMarketRaw = VNil, sNow = 0, sOrders = [], sRecs = [], sCycles = Seq.empty
  , sCycleA = 1, sCycleB = 1, sNextOrderId = 1, sNextRecoveryId = 1
  , sTotalProfit = 0, sTotalSettled = 0, sTotalFees = 0, sTodayLoss = 0, sRoundTrips = 0
  , sS2EnteredAt = VNil, sLastPriceUpdateAt = VNil, sLossesA = 0, sLossesB = 0
  , sCooldownA = 0, sCooldownB = 0, sLongOnly = False, sShortOnly = False, sModeSource = "none"
  , sRefreshesA = 0, sRefreshesB = 0, sLastDirA = VNil, sLastDirB = VNil
  , sRefreshCooldownA = 0, sRefreshCooldownB = 0, sProfitPctRuntime = 1.0 }

emptyOrder :: Order
emptyOrder = Order
  { oLocalId = 0, oSide = "buy", oRole = "entry", oPrice = 0, oVolume = 0, oTradeId = "A", oCycle = 0
  , oTxid = "", oPlacedAt = 0, oEntryPrice = 0, oEntryFee = VFloat 0, oEntryFilledAt = 0, oRegime = Nothing }

emptyRecovery :: Recovery
emptyRecovery = Recovery
  { rRecoveryId = 0, rSide = "buy", rPrice = 0, rVolume = 0, rTradeId = "A", rCycle = 0, rEntryPrice = 0
  , rOrphanedAt = 0, rEntryFee = VFloat 0, rEntryFilledAt = 0, rTxid = "", rReason = "stale", rRegime = Nothing }

emptyCycle :: Cycle
emptyCycle = Cycle
  { yTradeId = "A", yCycle = 0, yEntryPrice = 0, yExitPrice = 0, yVolume = 0, yGross = 0, yFees = 0
  , yNet = 0, yEntryFee = 0, yExitFee = 0, yQuoteFee = 0, ySettled = 0, yEntryTime = 0, yExitTime = 0
  , yFromRecovery = False, yRegime = Nothing
#ifdef MUTANTS
  , yFeeAsInt = False
#endif
  }
