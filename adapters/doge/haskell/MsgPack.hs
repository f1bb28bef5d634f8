{-# LANGUAGE BangPatterns, OverloadedStrings #-}
-- | A small msgpack codec over 'V': incremental decoding with Data.Binary.Get,
-- encoding with a ByteString Builder. Floats are read as float32 or float64 and
-- always written as float64. Ext types decode to 'VBad' (a bad request, not a
-- stream error); only bytes that are not msgpack at all (0xc1) fail the stream.
module MsgPack (getV, encV, encodable) where

import Data.Binary.Get
import qualified Data.ByteString as B
import qualified Data.ByteString.Builder as BB
import qualified Data.Text as T
import qualified Data.Text.Encoding as TE
import qualified Data.Text.Encoding.Error as TE
import Data.Bits ((.&.))
import Data.Int
import Data.Word
import Control.Monad (replicateM)
import GHC.Float (castWord32ToFloat, castWord64ToDouble, float2Double)
import Value

getV :: Get V
getV = do
  b <- getWord8
  if b <= 0x7f then pure (VInt (fromIntegral b))
  else if b >= 0xe0 then pure (VInt (fromIntegral b - 256))
  else if b .&. 0xf0 == 0x80 then getMap (fromIntegral (b .&. 0x0f))
  else if b .&. 0xf0 == 0x90 then getArr (fromIntegral (b .&. 0x0f))
  else if b .&. 0xe0 == 0xa0 then getStr (fromIntegral (b .&. 0x1f))
  else case b of
    0xc0 -> pure VNil
    0xc2 -> pure (VBool False)
    0xc3 -> pure (VBool True)
    0xc4 -> getWord8 >>= getBin . fromIntegral
    0xc5 -> getWord16be >>= getBin . fromIntegral
    0xc6 -> getWord32be >>= getBin . fromIntegral
    0xc7 -> getWord8 >>= skipExt . fromIntegral
    0xc8 -> getWord16be >>= skipExt . fromIntegral
    0xc9 -> getWord32be >>= skipExt . fromIntegral
    0xca -> (VFloat . float2Double . castWord32ToFloat) <$> getWord32be
    0xcb -> (VFloat . castWord64ToDouble) <$> getWord64be
    0xcc -> (VInt . fromIntegral) <$> getWord8
    0xcd -> (VInt . fromIntegral) <$> getWord16be
    0xce -> (VInt . fromIntegral) <$> getWord32be
    0xcf -> (VInt . fromIntegral) <$> getWord64be
    0xd0 -> (VInt . fromIntegral) <$> getInt8
    0xd1 -> (VInt . fromIntegral) <$> getInt16be
    0xd2 -> (VInt . fromIntegral) <$> getInt32be
    0xd3 -> (VInt . fromIntegral) <$> getInt64be
    0xd4 -> skipExt 1
    0xd5 -> skipExt 2
    0xd6 -> skipExt 4
    0xd7 -> skipExt 8
    0xd8 -> skipExt 16
    0xd9 -> getWord8 >>= getStr . fromIntegral
    0xda -> getWord16be >>= getStr . fromIntegral
    0xdb -> getWord32be >>= getStr . fromIntegral
    0xdc -> getWord16be >>= getArr . fromIntegral
    0xdd -> getWord32be >>= getArr . fromIntegral
    0xde -> getWord16be >>= getMap . fromIntegral
    0xdf -> getWord32be >>= getMap . fromIntegral
    _ -> fail "byte 0xc1 is never used in msgpack"

getStr :: Int -> Get V
getStr n = do
  bs <- getByteString n
  pure (VStr (TE.decodeUtf8With TE.lenientDecode bs))

getBin :: Int -> Get V
getBin n = VBin . B.copy <$> getByteString n

skipExt :: Int -> Get V
skipExt n = do
  _ <- getInt8
  skip n
  pure (VBad "msgpack ext types are not supported")

getArr :: Int -> Get V
getArr n = VArr <$> replicateM n getV

getMap :: Int -> Get V
getMap n = do
  kvs <- replicateM n ((,) <$> getV <*> getV)
  pure $ case traverse key kvs of
    Just ok -> VMap ok
    Nothing -> VBad "map keys must be strings"
  where
    key (VStr k, v) = Just (k, v)
    key _ = Nothing

-- | Can this value be written as msgpack (ints within int64/uint64)?
encodable :: V -> Bool
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
encV (VStr t) = let bs = TE.encodeUtf8 t; n = B.length bs in
  (if n < 32 then BB.word8 (0xa0 + fromIntegral n)
   else if n < 0x100 then BB.word8 0xd9 <> BB.word8 (fromIntegral n)
   else if n < 0x10000 then BB.word8 0xda <> BB.word16BE (fromIntegral n)
   else BB.word8 0xdb <> BB.word32BE (fromIntegral n)) <> BB.byteString bs
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
