{-# LANGUAGE BangPatterns, OverloadedStrings, CPP #-}
-- | Wire form <-> typed data: the lenient from_dict and the ordered to_dict of
-- DOGE_REDUCER.md section 2, config/event parsing, action maps, and the
-- canonical session delta (PROTOCOL.md) with its inverse (patch). The state's
-- fields are not named here: every reading and writing of them goes through the
-- tables in "Fields".
module Wire
  ( fromDict, toDict
  , parseConfig, parseEvent, inferEvent, Shape(..), Kind(..), EvField(..), eventShapes
  , actionPayload, actionTyped
  , normRegime, stateDelta, applyDelta, numField, orderKeys, orderFromValues
  ) where

import qualified Data.Text as T
import Data.Text (Text)
import Data.Maybe (isJust)
import Data.List (find)
import Value
import Types
import Fields
#include "mutants.h"
#ifdef MUTANTS
import Mutants
import Sabotage
#endif

-- from_dict / to_dict ------------------------------------------------------------------

-- | Python's from_dict: every field of 'stateFields' the map has, read onto the
-- empty state, then the two fallbacks of a missing key.
fromDict :: Mut -> V -> M St
fromDict mut (VMap m) = do
  let base = if MUTANT_IN(CycleDefaultZero, mut) then emptySt { sCycleA = 0, sCycleB = 0 } else emptySt
      base2 = if MUTANT_IN(ModeSourceDefaultEmpty, mut) then base { sModeSource = "" } else base
  st0 <- recordFrom stateFields base2 mut m
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
fromDict _ v = Left ("state must be a map, not " ++ typeName v)

#ifdef MUTANTS
hugeInts :: St -> Bool
hugeInts st = any (>= 9223372036854775808) ([sCycleA st, sCycleB st, sNextOrderId st, sNextRecoveryId st, sRoundTrips st]
  ++ map oLocalId (sOrders st) ++ map rRecoveryId (sRecs st))
#endif

toDict :: St -> V
toDict = recordV stateFields

-- | An order's keys in to_dict order (the fast patch path matches them by position).
orderKeys :: [Text]
orderKeys = map fKey orderFields

-- | from_dict of an order from the values of all its keys in to_dict order.
orderFromValues :: Mut -> [V] -> M Order
orderFromValues = recordFromValues orderFields emptyOrder

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

-- | How a payload field is read: a number (float() of it), a number kept as sent
-- (int or float), or any value (ids, txid, side).
data Kind = Num | Kept | Any

-- | A payload field's value as read.
data EvField = FNum Double | FRaw V

-- | An event type: its name, its payload fields in the order their errors are
-- reported, and the event made of their values by position. The one definition of
-- each event's shape: 'parseEvent' reads it from a decoded map (both transports),
-- Server's 'eventAt' from msgpack bytes (the step's hot path), 'inferEvent' infers
-- the JSON payload's type from its keys.
data Shape = Shape { shName :: Text, shFields :: [(Text, Kind)], shMake :: (Int -> EvField) -> Event }

eventShapes :: [Shape]
eventShapes =
  [ Shape "PriceTick" [("price", Kept), ("timestamp", Num)] (\f -> PriceTick (r f 0) (n f 1))
  , Shape "TimerTick" [("timestamp", Num)] (\f -> TimerTick (n f 0))
  , Shape "FillEvent" (fill "order_local_id") (\f -> FillEvent (r f 0) (r f 1) (n f 2) (n f 3) (r f 4) (n f 5))
  , Shape "RecoveryFillEvent" (fill "recovery_id")
      (\f -> RecoveryFillEvent (r f 0) (r f 1) (n f 2) (n f 3) (r f 4) (n f 5))
  , Shape "RecoveryCancelEvent" [("recovery_id", Any), ("timestamp", Num), ("txid", Any)]
      (\f -> RecoveryCancelEvent (r f 0) (n f 1)) ]
  where
    -- side is only required to be there (checked last)
    fill idKey = [ (idKey, Any), ("txid", Any), ("price", Num), ("volume", Num), ("fee", Kept), ("timestamp", Num)
                 , ("side", Any) ]
    n f k = case f k of { FNum d -> d; FRaw v -> maybe 0 id (vNum v) }
    r f k = case f k of { FRaw v -> v; FNum d -> VFloat d }

-- | An event from its type name and payload map.
parseEvent :: Text -> V -> M Event
parseEvent ty (VMap p) = case find (teq ty . shName) eventShapes of
  Nothing -> Left ("unknown event type " ++ show (T.unpack ty))
  Just sh -> (\vals -> shMake sh (vals !!)) <$> mapM one (shFields sh)
  where
    one (k, kind) = do
      v <- maybe (Left ("event payload misses " ++ T.unpack k)) Right (lookupT k p)
      case kind of
        Num -> FNum <$> numField k v
        Kept -> FRaw v <$ numField k v
        Any -> pure (FRaw v)
parseEvent _ v = Left ("event payload must be a map, not " ++ typeName v)

-- | The JSON transport's bare payload: the type is inferred from the keys (a
-- TimerTick's are exactly its one field).
inferEvent :: V -> M Event
inferEvent v@(VMap p) = parseEvent ty v
  where
    keysOf name = maybe [] (map fst . shFields) (find (teq name . shName) eventShapes)
    has name = all (\k -> isJust (lookupT k p)) (keysOf name)
    ty | has "FillEvent" = "FillEvent"
       | has "RecoveryFillEvent" = "RecoveryFillEvent"
       | has "RecoveryCancelEvent" = "RecoveryCancelEvent"
       | map fst p == keysOf "TimerTick" = "TimerTick"
       | has "PriceTick" = "PriceTick"
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

-- | The canonical delta from old to new: each field of 'stateFields' that differs
-- (with the diff's exact equality: type for type, bit for bit, NaN equal to NaN) is
-- set, a list field that only grew at its end appends its new items. Only the
-- changed fields are turned into wire values.
stateDelta :: St -> St -> V
stateDelta old new = VMap (nonEmpty "set" sets ++ nonEmpty "append" apps)
  where
    nonEmpty k xs = if null xs then [] else [(k, VMap xs)]
    -- the table walked with a known step: each field inlined, in table order,
    -- consed in reverse (sets and appends are a few entries)
    (sets, apps) = stateTable one (\s a -> (reverse s, reverse a)) [] []
    one f k = \ !s !a -> case fList f of
      Nothing -> if fEq f old new then k s a else let !v = fGet f new in k ((fKey f, v) : s) a
      Just ops -> case lDelta ops old new of
        Same -> k s a
        SetTo v -> k ((fKey f, v) : s) a
        AppendItems v -> k s ((fKey f, v) : a)
    {-# INLINE one #-}

-- | Apply a delta (a patch, or replaying a step) to a session's state: "set" reads
-- a field as from_dict does, "append" adds items to a list field.
applyDelta :: Mut -> V -> St -> M St
applyDelta mut (VMap d) st0 = do
  st1 <- case lookupT "set" d of
    Nothing -> Right st0
    Just VNil -> Right st0
    Just (VMap kvs) -> foldlE (\st (k, v) -> maybe (Right st) (\f -> annot k (fSet f mut v st)) (fieldOf k)) st0 kvs
    Just v -> Left ("delta set must be a map, not " ++ typeName v)
  case lookupT "append" d of
    Nothing -> Right st1
    Just VNil -> Right st1
    Just (VMap kvs) -> foldlE app st1 kvs
    Just v -> Left ("delta append must be a map, not " ++ typeName v)
  where
    fieldOf k = lookupT k [(fKey f, f) | f <- stateFields]
    app st (k, v) = annot k $ case v of
      VArr _ -> do
        items <- listItems k v
        case fieldOf k >>= fList of
          Just ops -> lAppend ops mut items st
          Nothing -> Left "append is only for list fields"
      _ -> Left ("append items must be a list, not " ++ typeName v)
applyDelta _ v _ = Left ("delta must be a map, not " ++ typeName v)

foldlE :: (b -> a -> M b) -> b -> [a] -> M b
foldlE _ !z [] = Right z
foldlE f !z (x:xs) = f z x >>= \z' -> foldlE f z' xs
