{-# LANGUAGE BangPatterns, OverloadedStrings, ScopedTypeVariables, MagicHash #-}
-- | A small msgpack codec over 'V'. Input is framed by an incremental scanner
-- ('scanFrame': resumable, allocation-free, linear however the bytes arrive),
-- then a complete object is decoded in one pass ('decodeFrame'). Floats are read
-- as float32 or float64 and always written as float64. Ext types decode to 'VBad'
-- (a bad request, not a stream error); only bytes that are not msgpack at all
-- (0xc1) fail the stream.
module MsgPack
  ( Scan(..), scanFrame, decodeFrame, decodeRequest, encV, encodeV, encodeChecked, encodable
  , valueAt, numberAt, fixStrAt, bytesAt, byteAt
  ) where

import qualified Data.ByteString as B
import qualified Data.ByteString.Unsafe as BU
import qualified Data.ByteString.Builder as BB
import qualified Data.Text as T
import qualified Data.Text.Encoding as TE
import qualified Data.Text.Encoding.Error as TE
import Data.Bits ((.&.), shiftL, shiftR, (.|.))
import Data.Int
import Data.Word
import GHC.Float (castWord32ToFloat, castWord64ToDouble, float2Double)
import Value
import Fields (fieldNames)
import Data.List (nub)
import qualified Data.Array as A
import qualified Data.Array.Base as AB
import qualified Data.ByteString.Internal as BI
import qualified Data.Text.Array as TA
import qualified Data.Text.Internal as TI
import Foreign.Ptr (Ptr, plusPtr, minusPtr, castPtr)
import Foreign.Storable (Storable, poke, peek, peekByteOff)
import GHC.ByteOrder (ByteOrder(..), targetByteOrder)
import GHC.Exts (Int(I#), indexWord8ArrayAsWord64#, (*#))
import GHC.Word (Word64(W64#))
import GHC.Num.Integer (Integer(IS))

-- | The known field names, in an open hash table indexed by length, first and last
-- byte (a few probes, no tree walk).
knownKeys :: A.Array Int [(B.ByteString, T.Text)]
knownKeys = A.accumArray (flip (:)) [] (0, keySlots - 1) [(keyHash b, (b, t)) | t <- ks, let b = TE.encodeUtf8 t]
  where
    -- the request and event keys, then every state field ("Fields" names them)
    ks = nub (map T.pack
      [ "op", "id", "state", "event", "config", "order_size_usd", "order_sizes", "with_invariants", "session"
      , "type", "payload", "price", "timestamp", "order_local_id", "txid", "side", "volume", "fee", "recovery_id"
      , "delta", "set", "append", "function", "args"
      -- names sent as values: the ops, the event types, sides and roles
      , "hello", "transition", "check_invariants", "call", "open", "step", "patch", "get", "close", "echo"
      , "PriceTick", "TimerTick", "FillEvent", "RecoveryFillEvent", "RecoveryCancelEvent"
      , "buy", "sell", "entry", "exit", "A", "B" ] ++ fieldNames)

keySlots :: Int
keySlots = 1024

keyHash :: B.ByteString -> Int
keyHash b = let n = B.length b in
  if n == 0 then 0
  else (n * 37 + fromIntegral (byteAt b 0) * 131 + fromIntegral (byteAt b (n - 1)) * 7) .&. (keySlots - 1)

lookupKey :: B.ByteString -> Maybe T.Text
lookupKey b = go (knownKeys `AB.unsafeAt` keyHash b)
  where
    go [] = Nothing
    go ((k, t) : rest) = if B.length k == B.length b && bytesAt b 0 k then Just t else go rest

-- | Do the bytes at i spell lit? (The caller checks i + length lit is in bounds.)
-- A byte loop: the names compared are short, and a memcmp call costs more than that.
bytesAt :: B.ByteString -> Int -> B.ByteString -> Bool
bytesAt bs i lit = go 0
  where
    n = B.length lit
    -- eight bytes at a time (unaligned loads), then the rest one by one
    go !k
      | k + 8 <= n = (word64At bs (i + k) == word64At lit k) && go (k + 8)
      | otherwise = k >= n || (byteAt bs (i + k) == byteAt lit k && go (k + 1))
{-# INLINE bytesAt #-}

word64At :: B.ByteString -> Int -> Word64
word64At (BI.PS fp off _) i = BI.accursedUnutterablePerformIO (BI.unsafeWithForeignPtr fp (\p -> peekByteOff p (off + i)))
{-# INLINE word64At #-}

-- | Result of scanning for one complete object starting at offset 0.
data Scan
  = Complete !Int          -- ^ the object ends at this offset
  | More !Int !Int         -- ^ need more bytes; resume at this offset with this many values owed
  | Invalid !Int           -- ^ byte at this offset is not msgpack

-- | Resume scanning at an offset with the number of values still owed (start with
-- @scanFrame bs 0 1@). msgpack is written in prefix order, so one count is all the
-- state a scan needs: each value read pays one, a container adds its items.
scanFrame :: B.ByteString -> Int -> Int -> Scan
scanFrame bs = go
  where
    len = B.length bs
    go !i !n
      | n == 0 = Complete i
      | i >= len = More i n
      | otherwise =
          let b = byteAt bs i
              scalar k = if i + 1 + k > len then More i n else go (i + 1 + k) (n - 1)
              sized h k = if i + 1 + h > len then More i n
                          else let sz = be i h in
                               if i + 1 + h + sz + k > len then More i n else go (i + 1 + h + sz + k) (n - 1)
              container h mult
                | i + 1 + h > len = More i n
                | otherwise = go (i + 1 + h) (n - 1 + be i h * mult)
          in if b <= 0x7f || b >= 0xe0 then go (i + 1) (n - 1)
             else if b .&. 0xf0 == 0x80 then go (i + 1) (n - 1 + fromIntegral (b .&. 0x0f) * 2)
             else if b .&. 0xf0 == 0x90 then go (i + 1) (n - 1 + fromIntegral (b .&. 0x0f))
             else if b .&. 0xe0 == 0xa0 then scalar (fromIntegral (b .&. 0x1f))
             else case b of
               0xc0 -> scalar 0
               0xc1 -> Invalid i
               0xc2 -> scalar 0
               0xc3 -> scalar 0
               0xc4 -> sized 1 0
               0xc5 -> sized 2 0
               0xc6 -> sized 4 0
               0xc7 -> sized 1 1
               0xc8 -> sized 2 1
               0xc9 -> sized 4 1
               0xca -> scalar 4
               0xcb -> scalar 8
               0xcc -> scalar 1
               0xcd -> scalar 2
               0xce -> scalar 4
               0xcf -> scalar 8
               0xd0 -> scalar 1
               0xd1 -> scalar 2
               0xd2 -> scalar 4
               0xd3 -> scalar 8
               0xd4 -> scalar 2
               0xd5 -> scalar 3
               0xd6 -> scalar 5
               0xd7 -> scalar 9
               0xd8 -> scalar 17
               0xd9 -> sized 1 0
               0xda -> sized 2 0
               0xdb -> sized 4 0
               0xdc -> container 2 1
               0xdd -> container 4 1
               0xde -> container 2 2
               _ -> container 4 2
    -- big-endian unsigned of h bytes after the type byte at i
    be :: Int -> Int -> Int
    be i h = fromIntegral (beN bs (i + 1) h)

w8 :: B.ByteString -> Int -> Word64
w8 bs i = fromIntegral (byteAt bs i)

-- | The byte at offset i, unchecked: 'BU.unsafeIndex' without its cost. With this
-- bytestring and GHC 9.0, unsafeIndex goes through withForeignPtr, whose keepAlive#
-- is an out-of-line call with a closure on every byte; unsafeWithForeignPtr only
-- touches the pointer.
byteAt :: B.ByteString -> Int -> Word8
byteAt (BI.PS fp off _) i = BI.accursedUnutterablePerformIO (BI.unsafeWithForeignPtr fp (\p -> peekByteOff p (off + i)))
{-# INLINE byteAt #-}

-- | Big-endian unsigned of h bytes at offset i (the usual sizes as one load and a
-- byte swap).
beN :: B.ByteString -> Int -> Int -> Word64
beN bs i h = case h of
  1 -> w8 bs i
  2 -> fromIntegral (be16 (load i))
  4 -> fromIntegral (be32 (load i))
  8 -> be64 (load i)
  _ -> go 0 0
  where
    go !a !k = if k == h then a else go (a `shiftL` 8 .|. w8 bs (i + k)) (k + 1)
    load :: Storable a => Int -> a
    load k = let BI.PS fp off _ = bs in
      BI.accursedUnutterablePerformIO (BI.unsafeWithForeignPtr fp (\p -> peekByteOff p (off + k)))
{-# INLINE beN #-}

-- | Decode one object known to be complete (as 'scanFrame' said) at offset i.
decodeFrame :: B.ByteString -> Int -> (V, Int)
decodeFrame bs = dec
  where
    dec :: Int -> (V, Int)
    dec !i =
      let b = byteAt bs i
          j = i + 1
          u h = fromIntegral (beN bs j h) :: Int
      in if b <= 0x7f then (VInt (fromIntegral b), j)
         else if b >= 0xe0 then (VInt (fromIntegral b - 256), j)
         else if b .&. 0xf0 == 0x80 then mapN (fromIntegral (b .&. 0x0f)) j
         else if b .&. 0xf0 == 0x90 then arrN (fromIntegral (b .&. 0x0f)) j
         else if b .&. 0xe0 == 0xa0 then fixStr (fromIntegral (b .&. 0x1f)) j
         else case b of
           0xc0 -> (VNil, j)
           0xc2 -> (VBool False, j)
           0xc3 -> (VBool True, j)
           0xc4 -> bin (u 1) (j + 1)
           0xc5 -> bin (u 2) (j + 2)
           0xc6 -> bin (u 4) (j + 4)
           0xc7 -> ext (u 1) (j + 1)
           0xc8 -> ext (u 2) (j + 2)
           0xc9 -> ext (u 4) (j + 4)
           0xca -> (VFloat (float2Double (castWord32ToFloat (fromIntegral (beN bs j 4)))), j + 4)
           0xcb -> (VFloat (castWord64ToDouble (beN bs j 8)), j + 8)
           0xcc -> (VInt (toInteger (beN bs j 1)), j + 1)
           0xcd -> (VInt (toInteger (beN bs j 2)), j + 2)
           0xce -> (VInt (toInteger (beN bs j 4)), j + 4)
           0xcf -> (VInt (toInteger (beN bs j 8)), j + 8)
           0xd0 -> (VInt (toInteger (fromIntegral (beN bs j 1) :: Int8)), j + 1)
           0xd1 -> (VInt (toInteger (fromIntegral (beN bs j 2) :: Int16)), j + 2)
           0xd2 -> (VInt (toInteger (fromIntegral (beN bs j 4) :: Int32)), j + 4)
           0xd3 -> (VInt (toInteger (fromIntegral (beN bs j 8) :: Int64)), j + 8)
           0xd4 -> ext 1 j
           0xd5 -> ext 2 j
           0xd6 -> ext 4 j
           0xd7 -> ext 8 j
           0xd8 -> ext 16 j
           0xd9 -> str (u 1) (j + 1)
           0xda -> str (u 2) (j + 2)
           0xdb -> str (u 4) (j + 4)
           0xdc -> arrN (u 2) (j + 2)
           0xdd -> arrN (u 4) (j + 4)
           0xde -> mapN (u 2) (j + 2)
           _ -> mapN (u 4) (j + 4)
    slice n i = BU.unsafeTake n (BU.unsafeDrop i bs)
    decKey i = let b = byteAt bs i in
      if b .&. 0xe0 == 0xa0 then key (fromIntegral (b .&. 0x1f)) (i + 1) else dec i
    str n i = (VStr (TE.decodeUtf8With TE.lenientDecode (slice n i)), i + n)
    -- a fixstr value: a known name (an op, an event type, a side) is shared, not decoded
    fixStr n i = case lookupKey (slice n i) of
      Just t -> (VStr t, i + n)
      Nothing -> str n i
    bin n i = (VBin (B.copy (slice n i)), i + n)
    ext n i = (VBad "msgpack ext types are not supported", i + 1 + n)
    arrN :: Int -> Int -> (V, Int)
    arrN n i0 = go n i0 []
      where
        go 0 i acc = (VArr (reverse acc), i)
        go k i acc = let (!v, !i1) = dec i in go (k - 1) i1 (v : acc)
    -- map keys are decoded through the table of known field names, so the common
    -- ones are shared rather than allocated per record
    key n i = case lookupKey (slice n i) of
      Just t -> (VStr t, i + n)
      Nothing -> str n i
    mapN :: Int -> Int -> (V, Int)
    mapN n i0 = go n i0 [] True
      where
        go 0 i acc ok = (if ok then VMap (reverse acc) else VBad "map keys must be strings", i)
        go k i acc ok =
          let (!kv, !i1) = decKey i
              (!v, !i2) = dec i1
          in case kv of
               VStr kt -> go (k - 1) i2 ((kt, v) : acc) ok
               _ -> go (k - 1) i2 acc False

------------------------------------------------------------------------------
-- Bounds-checked readers for the fast paths (no frame scan before them): each is
-- Nothing when its value is not all there or is not of the kind it reads.

-- | The value at i as 'decodeFrame' reads it, and where it ends; Nothing also when
-- it holds something the decoder cannot represent (ext types, non-string keys).
valueAt :: B.ByteString -> Int -> Maybe (V, Int)
valueAt bs i
  | i >= B.length bs = Nothing
  | fixed >= 0 = if i + 1 + fixed <= B.length bs then Just $! decodeFrame bs i else Nothing
  | otherwise = case scanFrame bs i 1 of
      Complete _ -> let r@(v, _) = decodeFrame bs i in if representable v then Just r else Nothing
      _ -> Nothing
  where
    -- bytes after the type byte of a scalar decodeFrame reads in full; -1 for the rest
    fixed = fixedSize (byteAt bs i)
    representable v = case v of
      VBad _ -> False
      VArr xs -> all representable xs
      VMap kvs -> all (representable . snd) kvs
      _ -> True

-- | A number at i as Python arithmetic sees the value (float, int or bool; what
-- 'vNum' gives for it), for the encodings an int of at most 32 bits or a float uses.
numberAt :: B.ByteString -> Int -> Maybe (Double, Int)
numberAt bs i
  | i >= len = Nothing
  | b == 0xcb = need 8 (castWord64ToDouble (beN bs (i + 1) 8))
  | b <= 0x7f = Just (fromIntegral b, i + 1)
  | b >= 0xe0 = Just (fromIntegral b - 256, i + 1)
  | b == 0xca = need 4 (float2Double (castWord32ToFloat (fromIntegral (beN bs (i + 1) 4))))
  | b == 0xc2 = Just (0, i + 1)
  | b == 0xc3 = Just (1, i + 1)
  | b == 0xcc = need 1 (fromIntegral (beN bs (i + 1) 1))
  | b == 0xcd = need 2 (fromIntegral (beN bs (i + 1) 2))
  | b == 0xce = need 4 (fromIntegral (beN bs (i + 1) 4))
  | b == 0xd0 = need 1 (fromIntegral (fromIntegral (beN bs (i + 1) 1) :: Int8))
  | b == 0xd1 = need 2 (fromIntegral (fromIntegral (beN bs (i + 1) 2) :: Int16))
  | b == 0xd2 = need 4 (fromIntegral (fromIntegral (beN bs (i + 1) 4) :: Int32))
  | otherwise = Nothing
  where
    len = B.length bs
    b = byteAt bs i
    need k d = if i + 1 + k <= len then Just (d, i + 1 + k) else Nothing

-- | The bytes of a fixstr at i (offset and length of its UTF-8).
fixStrAt :: B.ByteString -> Int -> Maybe (Int, Int)
fixStrAt bs i
  | i < B.length bs, b .&. 0xe0 == 0xa0, i + 1 + n <= B.length bs = Just (i + 1, n)
  | otherwise = Nothing
  where
    b = byteAt bs i
    n = fromIntegral (b .&. 0x1f)

-- | A map key at offset i, known field names shared as in 'decodeFrame'.
decodeKey :: B.ByteString -> Int -> (V, Int)
decodeKey bs i =
  let b = byteAt bs i
      n = fromIntegral (b .&. 0x1f)
  in if b .&. 0xe0 == 0xa0
       then case lookupKey (BU.unsafeTake n (BU.unsafeDrop (i + 1) bs)) of
              Just t -> (VStr t, i + 1 + n)
              Nothing -> decodeFrame bs i
       else decodeFrame bs i

-- | Read one request from the front of the buffer, and where it ends; Nothing when
-- it is not all there yet. Every read is bounds checked (no frame scan of the
-- whole request first: the values that are not read by a hook are scanned one by
-- one, and on the hot path those are a few scalars). The values are what
-- 'decodeFrame' makes of them, except that when the request is a map, two hooks
-- may stand in for decoding a top-level value:
--
-- * the value under its first "config" key is first offered to @cfg@ (the buffer
--   and the value's offset): on @Just (v, end, a)@ the hook's value stands for the
--   bytes up to @end@ and they are not decoded again. The value's span comes back
--   and, on a hit, the hook's extra result. (A msgpack object is self-delimiting:
--   bytes that start with a cached object's complete encoding hold exactly that
--   object there, so a byte comparison is a sound cache test.)
-- * the value under the first occurrence of any other key is offered to @typed@
--   (the key, the buffer, the offset): on @Just (b, end)@ the typed reading @b@ is
--   returned under that key and the map holds nil there (the request's reader takes
--   the typed value instead; the hook answers only what holds nothing 'VBad').
decodeRequest :: forall a b. (B.ByteString -> Int -> Maybe (V, Int, a))
              -> (T.Text -> Maybe (B.ByteString -> Int -> Maybe (b, Int)))
              -> B.ByteString -> Maybe (V, Maybe (Int, Int, Maybe a), [(T.Text, b)], Int)
decodeRequest hook typed bs
  | B.null bs = Nothing
  | b0 .&. 0xf0 == 0x80 = top (fromIntegral (b0 .&. 0x0f)) 1
  | b0 == 0xde = if len >= 3 then top (fromIntegral (beN bs 1 2)) 3 else Nothing
  | b0 == 0xdf = if len >= 5 then top (fromIntegral (beN bs 1 4)) 5 else Nothing
  | otherwise = case complete 0 of
      Got v e -> Just (v, Nothing, [], e)
      Missing -> Nothing
  where
    len = B.length bs
    b0 = byteAt bs 0
    -- the complete value at i as decodeFrame reads it (a scalar of fixed size
    -- needs no scan)
    complete :: Int -> Got
    complete i
      | i >= len = Missing
      | fixed >= 0 = if i + 1 + fixed <= len then got (decodeFrame bs i) else Missing
      | otherwise = case scanFrame bs i 1 of
          Complete _ -> got (decodeFrame bs i)
          _ -> Missing
      where
        fixed = fixedSize (byteAt bs i)
        got (v, e) = Got v e
    key :: Int -> Got
    key i
      | i < len, byteAt bs i .&. 0xe0 == 0xa0 =
          if i + 1 + fromIntegral (byteAt bs i .&. 0x1f) <= len then let (v, e) = decodeKey bs i in Got v e else Missing
      | otherwise = complete i
    top :: Int -> Int -> Maybe (V, Maybe (Int, Int, Maybe a), [(T.Text, b)], Int)
    top n i0 = go n i0 [] True Nothing [] []
      where
        -- seen: the keys offered to a typed reader (only its first occurrence is)
        go :: Int -> Int -> [(T.Text, V)] -> Bool -> Maybe (Int, Int, Maybe a) -> [T.Text] -> [(T.Text, b)]
           -> Maybe (V, Maybe (Int, Int, Maybe a), [(T.Text, b)], Int)
        go 0 !i acc ok sp _ ts = Just (if ok then VMap (reverse acc) else VBad "map keys must be strings", sp, ts, i)
        go k !i acc !ok sp seen ts = case key i of
          Missing -> Nothing
          Got kv i1 -> case kv of
            VStr "config" | Nothing <- sp -> case hook bs i1 of
              Just (v, i2, a) -> go (k - 1) i2 (("config", v) : acc) ok (Just (i1, i2, Just a)) seen ts
              Nothing -> case complete i1 of
                Got v i2 -> go (k - 1) i2 (("config", v) : acc) ok (Just (i1, i2, Nothing)) seen ts
                Missing -> Nothing
            VStr kt | Just reader <- typed kt, not (any (teq kt) seen) -> case reader bs i1 of
              Just (t, i2) -> go (k - 1) i2 ((kt, VNil) : acc) ok sp (kt : seen) ((kt, t) : ts)
              Nothing -> plainValue kt (kt : seen)
              where plainValue kt' seen' = case complete i1 of
                      Got v i2 -> go (k - 1) i2 ((kt', v) : acc) ok sp seen' ts
                      Missing -> Nothing
            VStr kt -> case complete i1 of
              Got v i2 -> go (k - 1) i2 ((kt, v) : acc) ok sp seen ts
              Missing -> Nothing
            _ -> case complete i1 of
              Got _ i2 -> go (k - 1) i2 acc False sp seen ts
              Missing -> Nothing

data Got = Got V Int | Missing

-- | Bytes after the type byte of a scalar whose size the type byte says; -1 for the rest.
fixedSize :: Word8 -> Int
fixedSize b
  | b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3 = 0
  | b == 0xcc || b == 0xd0 = 1
  | b == 0xcd || b == 0xd1 = 2
  | b == 0xca || b == 0xce || b == 0xd2 = 4
  | b == 0xcb || b == 0xcf || b == 0xd3 = 8
  | otherwise = -1

-- | Can this value be written as msgpack (ints within int64/uint64)?
encodable :: V -> Bool
encodable (VInt (IS _)) = True
encodable (VInt i) = i >= -9223372036854775808 && i <= 18446744073709551615
encodable (VArr xs) = all encodable xs
encodable (VMap kvs) = all (encodable . snd) kvs
encodable (VBad _) = False
encodable _ = True

encV :: V -> BB.Builder
encV VNil = BB.word8 0xc0
encV (VBool False) = BB.word8 0xc2
encV (VBool True) = BB.word8 0xc3
encV (VInt i) = encInt i
encV (VFloat d) = BB.word8 0xcb <> BB.doubleBE d
encV (VStr t) = let n = utf8Len t in
  (if n < 32 then BB.word8 (0xa0 + fromIntegral n)
   else if n < 0x100 then BB.word8 0xd9 <> BB.word8 (fromIntegral n)
   else if n < 0x10000 then BB.word8 0xda <> BB.word16BE (fromIntegral n)
   else BB.word8 0xdb <> BB.word32BE (fromIntegral n)) <> TE.encodeUtf8Builder t
encV (VBin bs) = let n = B.length bs in
  (if n < 0x100 then BB.word8 0xc4 <> BB.word8 (fromIntegral n)
   else if n < 0x10000 then BB.word8 0xc5 <> BB.word16BE (fromIntegral n)
   else BB.word8 0xc6 <> BB.word32BE (fromIntegral n)) <> BB.byteString bs
encV (VArr xs) = let n = length xs in
  (if n < 16 then BB.word8 (0x90 + fromIntegral n)
   else if n < 0x10000 then BB.word8 0xdc <> BB.word16BE (fromIntegral n)
   else BB.word8 0xdd <> BB.word32BE (fromIntegral n)) <> foldMap encV xs
encV (VMap kvs) = let n = length kvs in
  (if n < 16 then BB.word8 (0x80 + fromIntegral n)
   else if n < 0x10000 then BB.word8 0xde <> BB.word16BE (fromIntegral n)
   else BB.word8 0xdf <> BB.word32BE (fromIntegral n)) <> foldMap (\(k, v) -> encV (VStr k) <> encV v) kvs
encV (VBad s) = encV (VStr (T.pack s))

encInt :: Integer -> BB.Builder
encInt i
  | i >= 0 = if i < 128 then BB.word8 (fromIntegral i)
             else if i < 0x100 then BB.word8 0xcc <> BB.word8 (fromIntegral i)
             else if i < 0x10000 then BB.word8 0xcd <> BB.word16BE (fromIntegral i)
             else if i < 0x100000000 then BB.word8 0xce <> BB.word32BE (fromIntegral i)
             else BB.word8 0xcf <> BB.word64BE (fromIntegral i :: Word64)
  | i >= -32 = BB.int8 (fromIntegral i)
  | i >= -128 = BB.word8 0xd0 <> BB.int8 (fromIntegral i)
  | i >= -32768 = BB.word8 0xd1 <> BB.int16BE (fromIntegral i)
  | i >= -2147483648 = BB.word8 0xd2 <> BB.int32BE (fromIntegral i)
  | otherwise = BB.word8 0xd3 <> BB.int64BE (fromIntegral i :: Int64)

-- | Byte length of a Text in UTF-8 (surrogates cannot occur in Text).
utf8Len :: T.Text -> Int
utf8Len = T.foldl' (\a c -> a + (if c < '\x80' then 1 else if c < '\x800' then 2 else if c < '\x10000' then 3 else 4)) 0

------------------------------------------------------------------------------
-- Direct encoder: the same bytes as 'encV', written into one exactly sized
-- buffer (sizes first, then pokes) instead of through Builder closures.

-- | 'encV' as a strict ByteString (the value must be 'encodable').
encodeV :: V -> B.ByteString
encodeV v = BI.unsafeCreateUptoN (boundV v) (\p -> pokeV p v >>= \q -> pure (q `minusPtr` p))

-- | 'encodeV' when the value is 'encodable', else Nothing. One walk does both
-- the check and the sizing: it forces the value's parts in the order 'encodable'
-- does (each map value, left to right) and stops where it would.
encodeChecked :: V -> Maybe B.ByteString
encodeChecked v = let n = boundChecked v in
  if n < 0 then Nothing else Just (BI.unsafeCreateUptoN n (\p -> pokeV p v >>= \q -> pure (q `minusPtr` p)))

-- | 'boundV', or -1 when the value is not 'encodable'.
boundChecked :: V -> Int
boundChecked v = case v of
  VInt (IS _) -> 9
  VInt i -> if i >= -9223372036854775808 && i <= 18446744073709551615 then 9 else -1
  VArr xs -> goA 5 xs
  VMap kvs -> goM 5 kvs
  VBad _ -> -1
  _ -> boundV v
  where
    goA !acc [] = acc
    goA !acc (x : xs) = let b = boundChecked x in if b < 0 then -1 else goA (acc + b) xs
    goM !acc [] = acc
    goM !acc ((k, x) : xs) = let b = boundChecked x in if b < 0 then -1 else goM (acc + b + strBound k) xs

-- | An upper bound of the encoded size, without looking at text (a UTF-16 unit
-- is at most 3 bytes of UTF-8; a surrogate pair, two units, is 4).
boundV :: V -> Int
boundV v = case v of
  VNil -> 1
  VBool _ -> 1
  VInt _ -> 9
  VFloat _ -> 9
  VStr t -> strBound t
  VBin b -> B.length b + 5
  VArr xs -> goA 5 xs
  VMap kvs -> goM 5 kvs
  VBad e -> boundV (VStr (T.pack e))
  where
    goA !acc [] = acc
    goA !acc (x : xs) = goA (acc + boundV x) xs
    goM !acc [] = acc
    goM !acc ((k, x) : xs) = goM (acc + strBound k + boundV x) xs

strBound :: T.Text -> Int
strBound (TI.Text _ _ len) = 3 * len + 5

-- | UTF-8 length of a Text (text-1.2 holds UTF-16; Text never has lone surrogates).
utf8Length :: T.Text -> Int
utf8Length (TI.Text arr off len) = go off 0
  where
    end = off + len
    go !i !acc
      | i >= end = acc
      | otherwise =
          let w = TA.unsafeIndex arr i in
          if w < 0x80 then go (i + 1) (acc + 1)
          else if w < 0x800 then go (i + 1) (acc + 2)
          else if w >= 0xd800 && w < 0xdc00 then go (i + 2) (acc + 4)
          else go (i + 1) (acc + 3)

type P = Ptr Word8

w8p :: P -> Word8 -> IO P
w8p p b = poke p b >> pure (p `plusPtr` 1)
{-# INLINE w8p #-}

-- big-endian, n bytes of x
beP :: P -> Int -> Word64 -> IO P
beP p 2 x = poke (castPtr p) (be16 (fromIntegral x)) >> pure (p `plusPtr` 2)
beP p 4 x = poke (castPtr p) (be32 (fromIntegral x)) >> pure (p `plusPtr` 4)
beP p 8 x = poke (castPtr p) (be64 x) >> pure (p `plusPtr` 8)
beP p n x = go 0
  where
    go !k | k == n = pure (p `plusPtr` n)
          | otherwise = do poke (p `plusPtr` k) (fromIntegral (x `shiftR` (8 * (n - 1 - k))) :: Word8); go (k + 1)

be16 :: Word16 -> Word16
be16 = if targetByteOrder == LittleEndian then byteSwap16 else id
be32 :: Word32 -> Word32
be32 = if targetByteOrder == LittleEndian then byteSwap32 else id
be64 :: Word64 -> Word64
be64 = if targetByteOrder == LittleEndian then byteSwap64 else id
{-# INLINE be16 #-}
{-# INLINE be32 #-}
{-# INLINE be64 #-}

-- | 0xcb and the IEEE bits big-endian (the bits read back from memory: GHC 9.0's
-- castDoubleToWord64 is an out-of-line call).
pokeDouble :: P -> Double -> IO P
pokeDouble p d = do
  poke p 0xcb
  let q = p `plusPtr` 1
  poke (castPtr q) d
  w <- peek (castPtr q) :: IO Word64
  poke (castPtr q) (be64 w)
  pure (q `plusPtr` 8)

pokeV :: P -> V -> IO P
pokeV p v = case v of
  VNil -> w8p p 0xc0
  VBool False -> w8p p 0xc2
  VBool True -> w8p p 0xc3
  VInt i -> pokeInt p i
  VFloat d -> pokeDouble p d
  VStr t -> pokeStr p t
  VBin b -> do
    let n = B.length b
    q <- if n < 0x100 then w8p p 0xc4 >>= \q -> w8p q (fromIntegral n)
         else if n < 0x10000 then w8p p 0xc5 >>= \q -> beP q 2 (fromIntegral n)
         else w8p p 0xc6 >>= \q -> beP q 4 (fromIntegral n)
    let (fp, o, _) = BI.toForeignPtr b
    BI.unsafeWithForeignPtr fp (\src -> BI.memcpy q (src `plusPtr` o) n)
    pure (q `plusPtr` n)
  VArr xs -> do
    q <- hdr 0x90 0xdc 0xdd (length xs)
    goA q xs
  VMap kvs -> do
    q <- hdr 0x80 0xde 0xdf (length kvs)
    goM q kvs
  VBad e -> pokeV p (VStr (T.pack e))
  where
    hdr fix b16 b32 n
      | n < 16 = w8p p (fix + fromIntegral n)
      | n < 0x10000 = w8p p b16 >>= \q -> beP q 2 (fromIntegral n)
      | otherwise = w8p p b32 >>= \q -> beP q 4 (fromIntegral n)
    goA q [] = pure q
    goA q (x : xs) = pokeV q x >>= \q' -> goA q' xs
    goM q [] = pure q
    goM q ((k, x) : xs) = pokeStr q k >>= \q1 -> pokeV q1 x >>= \q2 -> goM q2 xs

pokeInt :: P -> Integer -> IO P
pokeInt p (IS n) = pokeIntegral p (I# n)
pokeInt p i = pokeIntegral p i

-- | An integer in msgpack's smallest encoding. Written once, specialised to Int (a small
-- Integer: no Integer arithmetic on the hot path) and to Integer (the rest).
pokeIntegral :: Integral a => P -> a -> IO P
{-# SPECIALIZE pokeIntegral :: P -> Int -> IO P #-}
{-# SPECIALIZE pokeIntegral :: P -> Integer -> IO P #-}
pokeIntegral p i
  | i >= 0 = if i < 128 then w8p p (fromIntegral i)
             else if i < 0x100 then w8p p 0xcc >>= \q -> w8p q (fromIntegral i)
             else if i < 0x10000 then w8p p 0xcd >>= \q -> beP q 2 (fromIntegral i)
             else if i < 0x100000000 then w8p p 0xce >>= \q -> beP q 4 (fromIntegral i)
             else w8p p 0xcf >>= \q -> beP q 8 (fromIntegral i)
  | i >= -32 = w8p p (fromIntegral i)
  | i >= -128 = w8p p 0xd0 >>= \q -> w8p q (fromIntegral i)
  | i >= -32768 = w8p p 0xd1 >>= \q -> beP q 2 (fromIntegral (fromIntegral i :: Int64))
  | i >= -2147483648 = w8p p 0xd2 >>= \q -> beP q 4 (fromIntegral (fromIntegral i :: Int64))
  | otherwise = w8p p 0xd3 >>= \q -> beP q 8 (fromIntegral (fromIntegral i :: Int64))

pokeStr :: P -> T.Text -> IO P
pokeStr p t@(TI.Text arr off len)
  | len < 32 = ascii4 (p `plusPtr` 1) off
  | otherwise = general
  where
    end = off + len
    -- one pass for short ASCII text (a fixstr of len bytes), four UTF-16 units at a
    -- time while four remain (one 64-bit load, one 32-bit store; map keys are mostly
    -- longer than that); anything else is written again from p by the general path
    ascii4 !q !i
      | littleEndian && i + 4 <= end =
          let w = units4 i in
          if w .&. 0xff80ff80ff80ff80 /= 0 then general
          else do
            poke (castPtr q) (fromIntegral ((w .&. 0xff) .|. ((w `shiftR` 8) .&. 0xff00)
                                 .|. ((w `shiftR` 16) .&. 0xff0000) .|. ((w `shiftR` 24) .&. 0xff000000)) :: Word32)
            ascii4 (q `plusPtr` 4) (i + 4)
      | otherwise = ascii q i
    ascii !q !i
      | i >= end = poke p (0xa0 + fromIntegral len :: Word8) >> pure q
      | otherwise = let w = TA.unsafeIndex arr i in
          if w < 0x80 then poke q (fromIntegral w :: Word8) >> ascii (q `plusPtr` 1) (i + 1)
          else general
    -- UTF-16 units i .. i+3 as one little-endian word (unit i in the low bits)
    units4 (I# i) = W64# (indexWord8ArrayAsWord64# (TA.aBA arr) (i *# 2#))
    general = pokeStrGeneral p t

littleEndian :: Bool
littleEndian = targetByteOrder == LittleEndian

pokeStrGeneral :: P -> T.Text -> IO P
pokeStrGeneral p t@(TI.Text arr off len) = do
  let n = utf8Length t
  q <- if n < 32 then w8p p (0xa0 + fromIntegral n)
       else if n < 0x100 then w8p p 0xd9 >>= \q -> w8p q (fromIntegral n)
       else if n < 0x10000 then w8p p 0xda >>= \q -> beP q 2 (fromIntegral n)
       else w8p p 0xdb >>= \q -> beP q 4 (fromIntegral n)
  go q off
  where
    end = off + len
    go !q !i
      | i >= end = pure q
      | otherwise =
          let w = TA.unsafeIndex arr i in
          if w < 0x80 then w8p q (fromIntegral w) >>= \q' -> go q' (i + 1)
          else if w < 0x800 then do
            q1 <- w8p q (0xc0 .|. fromIntegral (w `shiftR` 6))
            q2 <- w8p q1 (0x80 .|. fromIntegral (w .&. 0x3f))
            go q2 (i + 1)
          else if w >= 0xd800 && w < 0xdc00 then do
            let lo = TA.unsafeIndex arr (i + 1)
                c = 0x10000 + ((fromIntegral w - 0xd800) `shiftL` 10) + (fromIntegral lo - 0xdc00) :: Int
            q1 <- w8p q (0xf0 .|. fromIntegral (c `shiftR` 18))
            q2 <- w8p q1 (0x80 .|. fromIntegral ((c `shiftR` 12) .&. 0x3f))
            q3 <- w8p q2 (0x80 .|. fromIntegral ((c `shiftR` 6) .&. 0x3f))
            q4 <- w8p q3 (0x80 .|. fromIntegral (c .&. 0x3f))
            go q4 (i + 2)
          else do
            q1 <- w8p q (0xe0 .|. fromIntegral (w `shiftR` 12))
            q2 <- w8p q1 (0x80 .|. fromIntegral ((w `shiftR` 6) .&. 0x3f))
            q3 <- w8p q2 (0x80 .|. fromIntegral (w .&. 0x3f))
            go q3 (i + 1)
