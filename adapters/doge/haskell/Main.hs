-- | doge-core-exe: the Haskell port of the DOGE pair reducer.
--   --msgpack        shadowdiff protocol v1 over stdio (PROTOCOL.md)
--   --server         JSON lines (DOGE_REDUCER.md section 7)
--   (no mode)        one JSON request on stdin, one response on stdout
--   --mutant A,B,C   switch on seeded bugs (comma-separated or repeated; see --list-mutants)
module Main (main) where

import System.Environment (getArgs)
import System.Exit
import System.IO
import Mutants
import Server

usage :: String
usage = "usage: doge-core-exe [--msgpack | --server] [--mutant NAME[,NAME...]] | --list-mutants"

main :: IO ()
main = do
  args <- getArgs
  go args Nothing []
  where
    go ("--list-mutants" : _) _ _ = do
      mapM_ (\(_, n, c, d) -> putStrLn (n ++ "\t" ++ c ++ "\t" ++ d)) catalogue
    go ("--mutant" : names : rest) mode muts = case mutantsByNames names of
      Right ms -> go rest mode (muts ++ ms)
      Left name -> die ("doge-core-exe: unknown mutant " ++ show name ++ " (see --list-mutants)")
    go ("--msgpack" : rest) _ mut = go rest (Just "msgpack") mut
    go ("--server" : rest) _ mut = go rest (Just "server") mut
    go (("--help") : _) _ _ = putStrLn usage
    go (a : _) _ _ = do hPutStrLn stderr ("doge-core-exe: unknown argument " ++ show a); hPutStrLn stderr usage; exitWith (ExitFailure 2)
    go [] mode mut = case mode of
      Just "msgpack" -> serveMsgpack mut
      Just "server" -> serveJsonLines mut
      _ -> serveJsonOnce mut
