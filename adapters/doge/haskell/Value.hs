{-# LANGUAGE BangPatterns, StrictData, OverloadedStrings #-}
-- | Generic wire values (what msgpack / JSON carry) and the bits of Python
-- semantics the port needs on them: truthiness, str()/repr(), int(), float(),
-- round(x, n), value equality as the diff does it.
module Value
  ( V(..), vLookup, vEq, dEq, truthy, pyStr, pyRepr, pyReprDouble
  , pyInt, pyFloat, pyRound, pyRoundInt, pyIsSpace, pyStrip, pyIsDigitStr, unicodeDigitValue
  , vNum, pyMax, pyMin, teq, lookupT
  ) where

import qualified Data.ByteString as B
import qualified Data.ByteString.Char8 as BC
import qualified Data.Text as T
import qualified Data.Text.Array as TA
import qualified Data.Text.Internal as TI
import Data.Text (Text)
import Data.Char (generalCategory, GeneralCategory(..), ord, chr, isAscii, isPrint)
import Numeric (floatToDigits, showHex)
import Data.Ratio ((%))
import Data.Bits (shiftR, shiftL, bit)

-- | A wire value. Map keys are strings and keep their order.
-- 'VBad' marks something the decoder could read but cannot represent
-- (ext types, non-string map keys); any use of it is a bad request.
data V = VNil | VBool Bool | VInt Integer | VFloat Double | VStr Text | VBin B.ByteString
       | VArr [V] | VMap [(Text, V)] | VBad String
  deriving (Show)

vLookup :: Text -> V -> Maybe V
vLookup k (VMap kvs) = lookupT k kvs
vLookup _ _ = Nothing

-- | Equality as shadowdiff's exact rule compares: type for type (an int is never a float of equal
-- value) and bit for bit (-0.0 is not 0.0; NaN equals NaN). A delta must carry a field that turned
-- from 0 to 0.0, or from -0.0 to 0.0.
vEq :: V -> V -> Bool
vEq VNil VNil = True
vEq (VBool a) (VBool b) = a == b
vEq (VInt a) (VInt b) = a == b
vEq (VFloat a) (VFloat b) = dEq a b
vEq (VStr a) (VStr b) = a == b
vEq (VBin a) (VBin b) = a == b
vEq (VArr a) (VArr b) = length a == length b && and (zipWith vEq a b)
vEq (VMap a) (VMap b) = length a == length b && all (\(k, v) -> maybe False (vEq v) (lookupT k b)) a
vEq _ _ = False

-- | Text equality without a memcmp call (the reducer compares short names:
-- side, role, trade id, direction); the same answer as '=='.
teq :: Text -> Text -> Bool
teq (TI.Text a oa la) (TI.Text b ob lb) = la == lb && go 0
  where
    go !i = i >= la || (TA.unsafeIndex a (oa + i) == TA.unsafeIndex b (ob + i) && go (i + 1))
{-# INLINE teq #-}

-- | 'lookup' on a map's keys with 'teq' (first match, as 'lookup').
lookupT :: Text -> [(Text, a)] -> Maybe a
lookupT k = go
  where
    go [] = Nothing
    go ((k', v) : rest) = if teq k k' then Just v else go rest

dEq :: Double -> Double -> Bool
dEq a b = (a == b && isNegativeZero a == isNegativeZero b) || (isNaN a && isNaN b)
{-# INLINE dEq #-}

-- | Python truthiness.
truthy :: V -> Bool
truthy VNil = False
truthy (VBool b) = b
truthy (VInt i) = i /= 0
truthy (VFloat d) = d /= 0          -- NaN is truthy, as in Python
truthy (VStr t) = not (T.null t)
truthy (VBin b) = not (B.null b)
truthy (VArr xs) = not (null xs)
truthy (VMap kvs) = not (null kvs)
truthy (VBad _) = True

-- | A number as Python arithmetic would see it (bools are ints).
vNum :: V -> Maybe Double
vNum (VFloat d) = Just d
vNum (VInt i) = Just (intToDouble i)
vNum (VBool b) = Just (if b then 1 else 0)
vNum _ = Nothing

-- | Python's max(a, b): the first unless the second is strictly greater.
pyMax :: Double -> Double -> Double
pyMax a b = if b > a then b else a
pyMin :: Double -> Double -> Double
pyMin a b = if b < a then b else a

-- | Correctly rounded Integer -> Double (Python's float(int)).
intToDouble :: Integer -> Double
intToDouble i
  | abs i < 9007199254740992 = fromInteger i
  | otherwise = fromRational (fromInteger i)

------------------------------------------------------------------------------
-- str() and repr()

pyStr :: V -> Text
pyStr (VStr t) = t
pyStr v = T.pack (pyRepr v)

pyRepr :: V -> String
pyRepr VNil = "None"
pyRepr (VBool True) = "True"
pyRepr (VBool False) = "False"
pyRepr (VInt i) = show i
pyRepr (VFloat d) = pyReprDouble d
pyRepr (VStr t) = reprStr (T.unpack t)
pyRepr (VBin b) = 'b' : reprBytes b
pyRepr (VArr xs) = "[" ++ commaSep (map pyRepr xs) ++ "]"
pyRepr (VMap kvs) = "{" ++ commaSep [reprStr (T.unpack k) ++ ": " ++ pyRepr v | (k, v) <- kvs] ++ "}"
pyRepr (VBad s) = "<" ++ s ++ ">"

commaSep :: [String] -> String
commaSep [] = ""
commaSep [x] = x
commaSep (x:xs) = x ++ ", " ++ commaSep xs

quoteFor :: String -> Char
quoteFor s = if '\'' `elem` s && '"' `notElem` s then '"' else '\''

reprStr :: String -> String
reprStr s = q : concatMap esc s ++ [q]
  where
    q = quoteFor s
    esc c
      | c == q = ['\\', c]
      | c == '\\' = "\\\\"
      | c == '\n' = "\\n"
      | c == '\r' = "\\r"
      | c == '\t' = "\\t"
      | pyPrintable c = [c]
      | ord c < 0x100 = "\\x" ++ hexN 2 (ord c)
      | ord c < 0x10000 = "\\u" ++ hexN 4 (ord c)
      | otherwise = "\\U" ++ hexN 8 (ord c)

-- Python's str.isprintable for one character.
pyPrintable :: Char -> Bool
pyPrintable c
  | c == ' ' = True
  | isAscii c = isPrint c
  | otherwise = case generalCategory c of
      Control -> False; Format -> False; Surrogate -> False; PrivateUse -> False
      NotAssigned -> False; LineSeparator -> False; ParagraphSeparator -> False; Space -> False
      _ -> True

reprBytes :: B.ByteString -> String
reprBytes b = q : concatMap esc s ++ [q]
  where
    s = BC.unpack b
    q = quoteFor s
    esc c
      | c == q = ['\\', c]
      | c == '\\' = "\\\\"
      | c == '\n' = "\\n"
      | c == '\r' = "\\r"
      | c == '\t' = "\\t"
      | ord c >= 0x20 && ord c < 0x7f = [c]
      | otherwise = "\\x" ++ hexN 2 (ord c)

hexN :: Int -> Int -> String
hexN n x = let h = showHex x "" in replicate (n - length h) '0' ++ h

-- | Python's repr(float): shortest round-trip digits.
pyReprDouble :: Double -> String
pyReprDouble x
  | isNaN x = "nan"
  | isInfinite x = if x > 0 then "inf" else "-inf"
  | x == 0 = if isNegativeZero x then "-0.0" else "0.0"
  | x < 0 = '-' : pyReprDouble (negate x)
  | otherwise =
      let (ds0, e) = floatToDigits 10 x
          ds = map (\d -> chr (d + 48)) ds0
          n = length ds
      in if e > -4 && e <= 16
           then if e <= 0 then "0." ++ replicate (negate e) '0' ++ ds
                else if e >= n then ds ++ replicate (e - n) '0' ++ ".0"
                else take e ds ++ "." ++ drop e ds
           else let ex = e - 1
                    mant = case ds of
                      [d] -> [d]
                      (d:rest) -> d : '.' : rest
                      [] -> "0"
                    sgn = if ex < 0 then '-' else '+'
                    ed = show (abs ex)
                in mant ++ "e" ++ [sgn] ++ (if length ed < 2 then '0' : ed else ed)

------------------------------------------------------------------------------
-- whitespace and digits, Python style

-- | Python's str.isspace for one character (Zs, Zl, Zp, and bidi whitespace controls).
pyIsSpace :: Char -> Bool
pyIsSpace c = c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f') || c == '\x85'
  || (not (isAscii c) && case generalCategory c of
        Space -> True; LineSeparator -> True; ParagraphSeparator -> True; _ -> False)

pyStrip :: Text -> Text
pyStrip = T.dropAround pyIsSpace

-- | Value of a Unicode decimal digit (general category Nd), as Python's int() reads it.
-- Unicode lays every Nd digit out in contiguous runs of whole 0..9 blocks, so the value
-- is the position in the run modulo 10.
unicodeDigitValue :: Char -> Maybe Int
unicodeDigitValue c
  | c >= '0' && c <= '9' = Just (ord c - 48)
  | isAscii c = Nothing
  | generalCategory c /= DecimalNumber = Nothing
  | otherwise = Just (runBack (ord c) 0 `mod` 10)
  where
    runBack !i !k
      | i > 0 && generalCategory (chr (i - 1)) == DecimalNumber = runBack (i - 1) (k + 1)
      | otherwise = k :: Int

-- | Python's str.isdigit: decimal digits plus characters of Numeric_Type=Digit
-- (superscripts, circled digits, ...), which int() then refuses.
-- The Digit list is the common blocks, not the full Unicode table.
pyIsDigitChar :: Char -> Bool
pyIsDigitChar c = case unicodeDigitValue c of
  Just _ -> True
  Nothing -> let o = ord c in any (\(a, b) -> o >= a && o <= b) digitRanges
  where
    digitRanges =
      [ (0xB2, 0xB3), (0xB9, 0xB9), (0x1369, 0x1371), (0x19DA, 0x19DA), (0x2070, 0x2070)
      , (0x2074, 0x2079), (0x2080, 0x2089), (0x2460, 0x2468), (0x2474, 0x247C), (0x2488, 0x2490)
      , (0x24EA, 0x24EA), (0x24F5, 0x24FD), (0x24FF, 0x24FF), (0x2776, 0x277E), (0x2780, 0x2788)
      , (0x278A, 0x2792), (0x10A40, 0x10A43), (0x10E60, 0x10E68), (0x11052, 0x1105A)
      , (0x1F100, 0x1F10A) ]

pyIsDigitStr :: Text -> Bool
pyIsDigitStr t = not (T.null t) && T.all pyIsDigitChar t

------------------------------------------------------------------------------
-- int() and float()

-- | Python's int(x) for the wire values it accepts.
pyInt :: V -> Either String Integer
pyInt (VInt i) = Right i
pyInt (VBool b) = Right (if b then 1 else 0)
pyInt (VFloat d)
  | isNaN d = Left "ValueError: cannot convert float NaN to integer"
  | isInfinite d = Left "OverflowError: cannot convert float infinity to integer"
  | otherwise = Right (truncate d)
pyInt (VStr t) = maybe (Left ("ValueError: invalid literal for int() with base 10: " ++ reprStr (T.unpack t))) Right
                   (intLiteral (pyStrip t))
pyInt (VBin b) = maybe (Left ("ValueError: invalid literal for int() with base 10: b" ++ reprBytes b)) Right
                   (intLiteral (T.dropAround (\c -> isAscii c && pyIsSpace c) (T.pack (BC.unpack b))))
pyInt VNil = Left "TypeError: int() argument must be a string, a bytes-like object or a real number, not 'NoneType'"
pyInt (VArr _) = Left "TypeError: int() argument must be a string, a bytes-like object or a real number, not 'list'"
pyInt (VMap _) = Left "TypeError: int() argument must be a string, a bytes-like object or a real number, not 'dict'"
pyInt (VBad s) = Left s

-- sign, digits with single underscores between digits
intLiteral :: Text -> Maybe Integer
intLiteral t0 = do
  (neg, t) <- case T.uncons t0 of
    Just ('-', r) -> Just (True, r)
    Just ('+', r) -> Just (False, r)
    _ -> Just (False, t0)
  ds <- digitsUnderscore t
  let n = foldl (\a d -> a * 10 + toInteger d) 0 ds
  pure (if neg then negate n else n)

-- | Digits allowing single underscores between digits (PEP 515); Nothing when malformed.
digitsUnderscore :: Text -> Maybe [Int]
digitsUnderscore t = case T.unpack t of
  [] -> Nothing
  ('_':_) -> Nothing
  s -> go s
  where
    go [] = Just []
    go ('_':rest) = case rest of
      (c:_) | c /= '_' -> go rest
      _ -> Nothing
    go (c:rest) = (:) <$> unicodeDigitValue c <*> go rest

-- | Python's float(x).
pyFloat :: V -> Either String Double
pyFloat (VFloat d) = Right d
pyFloat (VInt i) = let d = intToDouble i in
  if isInfinite d then Left "OverflowError: int too large to convert to float" else Right d
pyFloat (VBool b) = Right (if b then 1 else 0)
pyFloat (VStr t) = maybe (Left ("ValueError: could not convert string to float: " ++ reprStr (T.unpack t))) Right
                     (floatLiteral (pyStrip t))
pyFloat (VBin b) = maybe (Left ("ValueError: could not convert string to float: b" ++ reprBytes b)) Right
                     (floatLiteral (T.dropAround (\c -> isAscii c && pyIsSpace c) (T.pack (BC.unpack b))))
pyFloat VNil = Left "TypeError: float() argument must be a string or a real number, not 'NoneType'"
pyFloat (VArr _) = Left "TypeError: float() argument must be a string or a real number, not 'list'"
pyFloat (VMap _) = Left "TypeError: float() argument must be a string or a real number, not 'dict'"
pyFloat (VBad s) = Left s

floatLiteral :: Text -> Maybe Double
floatLiteral t0 = do
  (neg, t) <- case T.uncons t0 of
    Just ('-', r) -> Just (True, r)
    Just ('+', r) -> Just (False, r)
    _ -> Just (False, t0)
  let sgn x = if neg then negate x else x
      low = T.toLower t
  if low `elem` ["inf", "infinity"] then Just (sgn (1 / 0))
  else if low == "nan" then Just (sgn (0 / 0))
  else do
    let (mant, ex) = T.break (\c -> c == 'e' || c == 'E') t
        (ip, fp0) = T.break (== '.') mant
    expo <- if T.null ex then Just 0 else do
      let e1 = T.drop 1 ex
      (eneg, e2) <- case T.uncons e1 of
        Just ('-', r) -> Just (True, r)
        Just ('+', r) -> Just (False, r)
        _ -> Just (False, e1)
      eds <- digitsUnderscore e2
      let ev = foldl (\a d -> a * 10 + toInteger d) 0 eds :: Integer
      pure (if eneg then negate ev else ev)
    let hasDot = not (T.null fp0)
        fp = T.drop 1 fp0
    ids <- if T.null ip then Just [] else digitsUnderscore ip
    fds <- if T.null fp then Just [] else digitsUnderscore fp
    if null ids && null fds then Nothing else Just ()
    if not hasDot && null ids then Nothing else Just ()
    let digits = dropWhile (== 0) (ids ++ fds)
        m = foldl (\a d -> a * 10 + toInteger d) 0 digits :: Integer
        e10 = expo - toInteger (length fds)
        nd = toInteger (length digits)
        v | m == 0 = 0
          | e10 + nd > 400 = 1 / 0
          | e10 + nd < -400 = 0
          | e10 >= 0 = fromRational (fromInteger (m * 10 ^ e10))
          | otherwise = fromRational (m % (10 ^ negate e10))
    pure (sgn v)

------------------------------------------------------------------------------
-- round

-- | Python's round(x, n) on a float, bit for bit: round the exact binary value
-- to n decimals, ties to even, then take the nearest double.
pyRound :: Integer -> Double -> Double
pyRound n x
  | isNaN x || isInfinite x = x
  | x == 0 = x
  | n > 323 = x
  | n < -308 = if x < 0 then -0.0 else 0.0
  | n >= 0 && n <= 22 && fastOk = fast
  | otherwise =
      let r = toRational x
          res | n >= 0 = let s = 10 ^ n :: Integer
                             q' = round (r * fromInteger s) :: Integer
                         in fromRational (q' % s)
              | otherwise = let s = 10 ^ negate n :: Integer
                                q' = round (r / fromInteger s) :: Integer
                            in fromRational (fromInteger (q' * s))
      in if res == 0 then (if x < 0 then -0.0 else 0.0) else res
  where
    -- Fast path, same result: x = m * 2^e exactly; round |m| * 10^n / 2^-e to an
    -- integer k (ties to even) with shifts, then k / 10^n is one correctly rounded
    -- IEEE division as long as k and 10^n are exact doubles (k < 2^53, n <= 22).
    (m, e) = decodeFloat x
    num = abs m * 10 ^ n
    sh = negate e
    q = num `shiftR` sh
    rm = num - (q `shiftL` sh)
    half = bit (sh - 1) :: Integer
    k | e >= 0 = 0
      | rm > half || (rm == half && odd q) = q + 1
      | otherwise = q
    fastOk = e < 0 && k < 9007199254740992
    mag = fromInteger k / (10 ^ n :: Double)
    fast | mag == 0 = if x < 0 then -0.0 else 0.0
         | x < 0 = negate mag
         | otherwise = mag

-- | Python's round(x) (no ndigits): nearest integer, ties to even.
pyRoundInt :: Double -> Either String Integer
pyRoundInt x
  | isNaN x = Left "ValueError: cannot convert float NaN to integer"
  | isInfinite x = Left "OverflowError: cannot convert float infinity to integer"
  | otherwise = Right (round x)

