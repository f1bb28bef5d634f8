{-# LANGUAGE BangPatterns, OverloadedStrings #-}
-- | JSON for the older line transport: a parser to 'V' (ints stay ints, Python's
-- NaN/Infinity literals accepted) and a writer that prints floats as Python's
-- json.dumps does (DOGE_REDUCER.md section 9): float repr (100.0 stays a float,
-- -0.0 keeps its sign) and the bare tokens NaN, Infinity and -Infinity.
module Json (parseJson, encJson) where

import qualified Data.ByteString as B
import qualified Data.ByteString.Char8 as BC
import qualified Data.ByteString.Unsafe as BU
import qualified Data.ByteString.Builder as BB
import qualified Data.Text as T
import qualified Data.Text.Encoding as TE
import qualified Data.Text.Encoding.Error as TE
import Data.Char (chr, ord, isHexDigit, digitToInt)
import Data.Word (Word8)
import Value

parseJson :: B.ByteString -> Either String V
parseJson bs = do
  (v, i) <- value bs (skipWs bs 0)
  let j = skipWs bs i
  if j < B.length bs then Left ("trailing data at offset " ++ show j) else Right v

at :: B.ByteString -> Int -> Word8
at bs i = if i < B.length bs then BU.unsafeIndex bs i else 0

skipWs :: B.ByteString -> Int -> Int
skipWs bs !i = let c = at bs i in
  if i < B.length bs && (c == 32 || c == 9 || c == 10 || c == 13) then skipWs bs (i + 1) else i

lit :: B.ByteString -> Int -> B.ByteString -> Bool
lit bs i w = B.take (B.length w) (B.drop i bs) == w

value :: B.ByteString -> Int -> Either String (V, Int)
value bs i
  | i >= B.length bs = Left "unexpected end of input"
  | otherwise = case chr (fromIntegral (at bs i)) of
      '{' -> object bs (skipWs bs (i + 1)) []
      '[' -> array bs (skipWs bs (i + 1)) []
      '"' -> (\(t, j) -> (VStr t, j)) <$> str bs (i + 1)
      't' | lit bs i "true" -> Right (VBool True, i + 4)
      'f' | lit bs i "false" -> Right (VBool False, i + 5)
      'n' | lit bs i "null" -> Right (VNil, i + 4)
      'N' | lit bs i "NaN" -> Right (VFloat (0 / 0), i + 3)
      'I' | lit bs i "Infinity" -> Right (VFloat (1 / 0), i + 8)
      '-' | lit bs i "-Infinity" -> Right (VFloat (-1 / 0), i + 9)
      c | c == '-' || (c >= '0' && c <= '9') -> number bs i
      c -> Left ("unexpected character " ++ show c ++ " at offset " ++ show i)

object :: B.ByteString -> Int -> [(T.Text, V)] -> Either String (V, Int)
object bs i acc
  | at bs i == 125 && null acc = Right (VMap [], i + 1)
  | at bs i /= 34 = Left ("expected a string key at offset " ++ show i)
  | otherwise = do
      (k, j) <- str bs (i + 1)
      let j' = skipWs bs j
      if at bs j' /= 58 then Left ("expected ':' at offset " ++ show j') else do
        (v, l) <- value bs (skipWs bs (j' + 1))
        let l' = skipWs bs l
            acc' = (k, v) : acc
        case at bs l' of
          44 -> object bs (skipWs bs (l' + 1)) acc'
          125 -> Right (VMap (dedupe (reverse acc')), l' + 1)
          _ -> Left ("expected ',' or '}' at offset " ++ show l')
  where
    -- Python's dict keeps the first position and the last value of a repeated key.
    dedupe kvs = if distinct (map fst kvs) then kvs
                 else let keys = foldl (\ks (k, _) -> if k `elem` ks then ks else ks ++ [k]) [] kvs
                      in [(k, last [v | (k', v) <- kvs, k' == k]) | k <- keys]
    distinct ks = length ks == length (foldr (\k a -> if k `elem` a then a else k : a) [] ks)

array :: B.ByteString -> Int -> [V] -> Either String (V, Int)
array bs i acc
  | at bs i == 93 && null acc = Right (VArr [], i + 1)
  | otherwise = do
      (v, j) <- value bs i
      let j' = skipWs bs j
      case at bs j' of
        44 -> array bs (skipWs bs (j' + 1)) (v : acc)
        93 -> Right (VArr (reverse (v : acc)), j' + 1)
        _ -> Left ("expected ',' or ']' at offset " ++ show j')

number :: B.ByteString -> Int -> Either String (V, Int)
number bs i =
  let isD c = c >= 48 && c <= 57
      j0 = if at bs i == 45 then i + 1 else i
      j1 = spanD j0
      spanD k = if k < B.length bs && isD (at bs k) then spanD (k + 1) else k
      (j2, frac) = if at bs j1 == 46 then (spanD (j1 + 1), True) else (j1, False)
      (j3, ex) = if at bs j2 == 101 || at bs j2 == 69
                   then let k = if at bs (j2 + 1) == 43 || at bs (j2 + 1) == 45 then j2 + 2 else j2 + 1
                        in (spanD k, True)
                   else (j2, False)
      txt = B.take (j3 - i) (B.drop i bs)
  in if j1 == j0 then Left ("bad number at offset " ++ show i)
     else if frac || ex
       then case pyFloat (VStr (TE.decodeLatin1 txt)) of
              Right d -> Right (VFloat d, j3)
              Left e -> Left e
       else case BC.readInteger txt of
              Just (n, _) -> Right (VInt n, j3)
              Nothing -> Left ("bad number at offset " ++ show i)

str :: B.ByteString -> Int -> Either String (T.Text, Int)
str bs i0 = go i0 []
  where
    n = B.length bs
    -- chunks are reversed pieces of Text
    go !i acc =
      let j = scan i in
      if j >= n then Left "unterminated string"
      else let piece = TE.decodeUtf8With TE.lenientDecode (B.take (j - i) (B.drop i bs))
               acc' = piece : acc in
           if at bs j == 34 then Right (T.concat (reverse acc'), j + 1)
           else escape (j + 1) acc'
    scan !k = if k < n && at bs k /= 34 && at bs k /= 92 then scan (k + 1) else k
    escape i acc
      | i >= n = Left "unterminated string"
      | otherwise = case chr (fromIntegral (at bs i)) of
          '"' -> go (i + 1) ("\"" : acc)
          '\\' -> go (i + 1) ("\\" : acc)
          '/' -> go (i + 1) ("/" : acc)
          'b' -> go (i + 1) ("\b" : acc)
          'f' -> go (i + 1) ("\f" : acc)
          'n' -> go (i + 1) ("\n" : acc)
          'r' -> go (i + 1) ("\r" : acc)
          't' -> go (i + 1) ("\t" : acc)
          'u' -> do
            h <- hex4 (i + 1)
            if h >= 0xD800 && h < 0xDC00 && lit bs (i + 5) "\\u"
              then do
                l <- hex4 (i + 7)
                if l >= 0xDC00 && l < 0xE000
                  then go (i + 11) (T.singleton (chr (0x10000 + (h - 0xD800) * 0x400 + (l - 0xDC00))) : acc)
                  else go (i + 5) (T.singleton '\xFFFD' : acc)
              else go (i + 5) (T.singleton (if h >= 0xD800 && h < 0xE000 then '\xFFFD' else chr h) : acc)
          c -> Left ("invalid escape \\" ++ [c])
    hex4 k = let cs = map (chr . fromIntegral) (B.unpack (B.take 4 (B.drop k bs))) in
      if length cs == 4 && all isHexDigit cs then Right (foldl (\a c -> a * 16 + digitToInt c) 0 cs)
      else Left "bad \\u escape"

encJson :: V -> BB.Builder
encJson v = case v of
  VNil -> "null"
  VBool True -> "true"
  VBool False -> "false"
  VInt i -> BB.integerDec i
  VFloat d
    | isNaN d -> "NaN"
    | isInfinite d -> if d > 0 then "Infinity" else "-Infinity"
    | otherwise -> BB.string7 (pyReprDouble d)
  VStr t -> jstr t
  VBin b -> jstr (TE.decodeLatin1 b)
  VArr xs -> "[" <> commas (map encJson xs) <> "]"
  VMap kvs -> "{" <> commas [jstr k <> ": " <> encJson x | (k, x) <- kvs] <> "}"
  VBad s -> jstr (T.pack s)
  where
    commas [] = mempty
    commas (x:xs) = x <> mconcat [", " <> y | y <- xs]

jstr :: T.Text -> BB.Builder
jstr t = BB.char7 '"' <> T.foldr (\c b -> esc c <> b) mempty t <> BB.char7 '"'
  where
    esc c = case c of
      '"' -> "\\\""
      '\\' -> "\\\\"
      '\n' -> "\\n"
      '\r' -> "\\r"
      '\t' -> "\\t"
      _ | ord c < 0x20 -> "\\u00" <> BB.word8HexFixed (fromIntegral (ord c))
        | otherwise -> BB.charUtf8 c
