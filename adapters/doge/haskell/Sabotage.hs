-- | The side effects of the failure mutants, reachable from pure code.
-- Each takes the value it guards, so nothing is floated out or shared.
module Sabotage (crashWith, hangOn, garbageThen) where

import System.IO.Unsafe (unsafePerformIO)
import System.IO
import System.Exit
import Control.Concurrent (threadDelay)
import Control.Monad (forever)
import qualified Data.ByteString.Char8 as BC

{-# NOINLINE crashWith #-}
crashWith :: String -> a -> a
crashWith msg x = unsafePerformIO $ do
  hPutStrLn stderr ("doge-core-exe: " ++ msg)
  hFlush stdout
  _ <- exitWith (ExitFailure 3)
  return x

{-# NOINLINE hangOn #-}
hangOn :: a -> a
hangOn x = unsafePerformIO $ do
  hPutStrLn stderr "doge-core-exe: waiting for price convergence"
  _ <- forever (threadDelay 1000000)
  return x

{-# NOINLINE garbageThen #-}
garbageThen :: a -> a
garbageThen x = unsafePerformIO $ do
  BC.hPut stdout (BC.pack "\xc1\xc1 DEBUG txid decode fallback \xff\xfe\n")
  hFlush stdout
  return x
