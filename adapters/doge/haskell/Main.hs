{-# LANGUAGE CPP #-}
-- | doge-core-exe: the Haskell port of the DOGE pair reducer.
--   --msgpack        shadowdiff protocol v1 over stdio (PROTOCOL.md)
--   --server         JSON lines (DOGE_REDUCER.md section 7)
--   (no mode)        one JSON request on stdin, one response on stdout
-- Built with -DMUTANTS (build.sh's doge-core-mutants) it also takes
--   --mutant A,B,C   switch on seeded bugs (comma-separated or repeated; see --list-mutants)
-- The production binary, doge-core-exe, has none of them (see mutants.h) and refuses both flags.
module Main (main) where

import System.Environment (getArgs)
import System.Exit
import System.IO
import Server
import Types (Mut, noSeeds)
#ifdef MUTANTS
import Mutants
#endif

exeName :: String
#ifdef MUTANTS
exeName = "doge-core-mutants"
#else
exeName = "doge-core-exe"
#endif

usage :: String
#ifdef MUTANTS
usage = "usage: " ++ exeName ++ " [--msgpack | --server] [--mutant NAME[,NAME...]] | --list-mutants"
#else
usage = "usage: " ++ exeName ++ " [--msgpack | --server]"
#endif

data Mode = OneShot | MsgPack | JsonLines

main :: IO ()
main = do
  args <- getArgs
  go args OneShot noSeeds
  where
    go :: [String] -> Mode -> Mut -> IO ()
#ifdef MUTANTS
    go ("--list-mutants" : _) _ _ =
      mapM_ (\(_, n, c, d) -> putStrLn (n ++ "\t" ++ c ++ "\t" ++ d)) catalogue
    go ("--mutant" : names : rest) mode muts = case mutantsByNames names of
      Right ms -> go rest mode (muts ++ ms)
      Left name -> die (exeName ++ ": unknown mutant " ++ show name ++ " (see --list-mutants)")
#else
    go (a : _) _ _ | a == "--mutant" || a == "--list-mutants" = do
      hPutStrLn stderr (exeName ++ ": " ++ a ++ " is only in doge-core-mutants (build.sh builds it next to this production binary)")
      exitWith (ExitFailure 2)
#endif
    go ("--msgpack" : rest) _ mut = go rest MsgPack mut
    go ("--server" : rest) _ mut = go rest JsonLines mut
    go ("--help" : _) _ _ = putStrLn usage
    go (a : _) _ _ = do hPutStrLn stderr (exeName ++ ": unknown argument " ++ show a); hPutStrLn stderr usage; exitWith (ExitFailure 2)
    go [] mode mut = case mode of
      MsgPack -> serveMsgpack mut
      JsonLines -> serveJsonLines mut
      OneShot -> serveJsonOnce mut
