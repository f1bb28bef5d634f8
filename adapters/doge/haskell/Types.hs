{-# LANGUAGE StrictData, OverloadedStrings, CPP #-}
-- | The reducer's typed data: config, state, events, actions.
module Types where

import Data.Text (Text)
import qualified Data.Sequence as Seq
import Value (V(..))
#ifdef MUTANTS
import Mutants (Mutant)

-- | The seeded mutants switched on (doge-core-mutants only; see mutants.h).
type Mut = [Mutant]

noSeeds :: Mut
noSeeds = []
#else

-- | doge-core-exe has no seeded mutants (see mutants.h): the switch carries nothing.
type Mut = ()

noSeeds :: Mut
noSeeds = ()

-- | What mutants.h's MUTANT_IN is in this build: never on.
seedOff :: Mut -> Bool
seedOff _ = False
{-# INLINE seedOff #-}
#endif

data Config = Config
  { cEntryPct :: Double, cEntryPctA :: Maybe Double, cEntryPctB :: Maybe Double
  , cProfitPct :: Double, cRefreshPct :: Double, cOrderSizeUsd :: Double
  , cPriceDecimals :: Integer, cVolumeDecimals :: Integer
  , cMinVolume :: Double, cMinCostUsd :: Double, cMakerFeePct :: Double
  , cStalePriceMaxAge :: Double, cS1OrphanAfter :: Double, cS2OrphanAfter :: Double
  , cLossBackoffStart :: Integer, cLossCooldownStart :: Integer, cLossCooldownSec :: Double
  , cReentryBaseCooldown :: Double, cBackoffFactor :: Double, cBackoffMaxMult :: Double
  , cMaxConsecRefreshes :: Integer, cRefreshCooldownSec :: Double, cMaxRecoverySlots :: V
  , cSticky :: Bool
  }

defaultConfig :: Config
defaultConfig = Config
  { cEntryPct = 0.2, cEntryPctA = Nothing, cEntryPctB = Nothing, cProfitPct = 1.0, cRefreshPct = 1.0
  , cOrderSizeUsd = 2.0, cPriceDecimals = 6, cVolumeDecimals = 0, cMinVolume = 13.0, cMinCostUsd = 0.0
  , cMakerFeePct = 0.25, cStalePriceMaxAge = 60.0, cS1OrphanAfter = 1350.0, cS2OrphanAfter = 1800.0
  , cLossBackoffStart = 3, cLossCooldownStart = 5, cLossCooldownSec = 900.0, cReentryBaseCooldown = 0.0
  , cBackoffFactor = 0.5, cBackoffMaxMult = 5.0, cMaxConsecRefreshes = 3, cRefreshCooldownSec = 300.0
  , cMaxRecoverySlots = VInt 2, cSticky = False }

data Order = Order
  { oLocalId :: Integer, oSide :: Text, oRole :: Text, oPrice :: Double, oVolume :: Double
  , oTradeId :: Text, oCycle :: Integer, oTxid :: Text, oPlacedAt :: Double, oEntryPrice :: Double
  , oEntryFee :: V, oEntryFilledAt :: Double, oRegime :: Maybe Integer }
    -- oEntryFee: a number as the module holds it (an entry fill's fee is kept as sent: int 0 stays 0)
  deriving (Show)

data Recovery = Recovery
  { rRecoveryId :: Integer, rSide :: Text, rPrice :: Double, rVolume :: Double, rTradeId :: Text
  , rCycle :: Integer, rEntryPrice :: Double, rOrphanedAt :: Double, rEntryFee :: V
  , rEntryFilledAt :: Double, rTxid :: Text, rReason :: Text, rRegime :: Maybe Integer }
  deriving (Show)

data Cycle = Cycle
  { yTradeId :: Text, yCycle :: Integer, yEntryPrice :: Double, yExitPrice :: Double, yVolume :: Double
  , yGross :: Double, yFees :: Double, yNet :: Double, yEntryFee :: Double, yExitFee :: Double
  , yQuoteFee :: Double, ySettled :: Double, yEntryTime :: Double, yExitTime :: Double
  , yFromRecovery :: Bool, yRegime :: Maybe Integer
#ifdef MUTANTS
  , yFeeAsInt :: Bool   -- only the mutant fee_int_booked_as_int sets it: exit_fee (and a B quote_fee) written as int
#endif
  }
  deriving (Eq, Show)

data St = St
  { sMarket :: Double, sMarketRaw :: V   -- sMarketRaw: VNil, or a PriceTick's non-float price as sent
                                         -- (the module keeps event.price raw in market_price)
  , sNow :: Double
  , sOrders :: [Order], sRecs :: [Recovery], sCycles :: Seq.Seq Cycle
  , sCycleA :: Integer, sCycleB :: Integer, sNextOrderId :: Integer, sNextRecoveryId :: Integer
  , sTotalProfit :: Double, sTotalSettled :: Double, sTotalFees :: Double, sTodayLoss :: Double
  , sRoundTrips :: Integer, sS2EnteredAt :: V, sLastPriceUpdateAt :: V
  , sLossesA :: Integer, sLossesB :: Integer, sCooldownA :: Double, sCooldownB :: Double
  , sLongOnly :: Bool, sShortOnly :: Bool, sModeSource :: Text
  , sRefreshesA :: Integer, sRefreshesB :: Integer, sLastDirA :: V, sLastDirB :: V
  , sRefreshCooldownA :: Double, sRefreshCooldownB :: Double, sProfitPctRuntime :: Double }

data Event
  = PriceTick V Double                          -- price (a number, kept as sent), timestamp
  | TimerTick Double
  | FillEvent V V Double Double V Double      -- order_local_id, txid, price, volume, fee (a number, kept as sent), timestamp
  | RecoveryFillEvent V V Double Double V Double -- recovery_id, txid, price, volume, fee (a number, kept as sent), timestamp
  | RecoveryCancelEvent V Double                 -- recovery_id, timestamp

eventName :: Event -> Text
eventName e = case e of
  PriceTick{} -> "PriceTick"; TimerTick{} -> "TimerTick"; FillEvent{} -> "FillEvent"
  RecoveryFillEvent{} -> "RecoveryFillEvent"; RecoveryCancelEvent{} -> "RecoveryCancelEvent"

data Action
  = PlaceOrder Integer Text Text Double Double Text Integer Text
      -- local_id side role price volume trade_id cycle reason (post_only is always True)
  | CancelOrder Integer Text Text              -- local_id txid reason
  | OrphanOrder Integer Integer Text           -- local_id recovery_id reason
  | BookCycle Text Integer Double Double Double Double Bool
      -- trade_id cycle net gross fees settled from_recovery

data Phase = S0 | S1a | S1b | S2 deriving (Eq, Show)
