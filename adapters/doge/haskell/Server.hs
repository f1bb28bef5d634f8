{-# LANGUAGE BangPatterns, OverloadedStrings, ScopedTypeVariables #-}
-- | The two transports: msgpack (PROTOCOL.md, with sessions) and the older JSON
-- lines of DOGE_REDUCER.md section 7 (plus its one-shot form).
module Server (serveMsgpack, serveJsonLines, serveJsonOnce) where

import qualified Data.ByteString as B
import qualified Data.ByteString.Char8 as BC
import qualified Data.ByteString.Unsafe as BU
import qualified Data.ByteString.Internal as BI
import Foreign.Ptr (castPtr, plusPtr)
import qualified Data.ByteString.Lazy as L
import qualified Data.ByteString.Builder as BB
import qualified Data.ByteString.Builder.Extra as BBE
import qualified Data.Map.Strict as M
import qualified Data.Text as T
import qualified Data.Text.Encoding as TE
import Data.Text (Text)
import Control.Exception
import Data.Bits ((.&.), (.|.), unsafeShiftL)
import Data.Maybe (fromMaybe, isNothing)
import Data.List (find)
import System.IO
import System.Exit
import Value
import MsgPack
import Json
import Types
import Wire
import Reducer

type Sessions = M.Map Integer St

data Err = BadRequest String | Unsupported String | Internal String

type H = Either Err

bad :: Either String a -> H a
bad = either (Left . BadRequest) Right

field :: Text -> [(Text, V)] -> H V
field k m = case lookupT k m of
  Just v -> Right v
  Nothing -> Left (BadRequest ("missing field " ++ show (T.unpack k)))

optField :: Text -> [(Text, V)] -> Maybe V
optField k m = case lookupT k m of
  Just VNil -> Nothing
  r -> r

version :: Text
version = "0.1.0"

opsList :: [Text]
opsList = ["hello", "transition", "check_invariants", "call", "open", "step", "patch", "get", "close", "echo"]

-- | Env from a request's config, order_size_usd and order_sizes. The config may
-- come already parsed (the cached parse of the request's own config bytes).
envFrom :: Mut -> Pre -> [(Text, V)] -> H Env
envFrom mut pre m = do
  cfg <- bad (case preCfg pre of
    Just r -> r
    Nothing -> parseConfig (maybe VNil id (lookupT "config" m)))
  size <- case optField "order_size_usd" m of
    Nothing -> Right (cOrderSizeUsd cfg)
    Just v -> bad (numField "order_size_usd" v)
  sizes <- case optField "order_sizes" m of
    Nothing -> Right Nothing
    Just (VMap kvs) -> Right (Just kvs)
    Just _ -> Left (BadRequest "order_sizes must be a map or nil")
  pure Env { eCfg = cfg, eSize = size, eSizes = sizes, eMut = mut }

-- | A request's event: the one 'eventAt' read from the bytes, else the decoded map
-- read by 'parseEvent'.
eventArg :: Pre -> [(Text, V)] -> H Event
eventArg pre m = case lookupT "event" (preTyped pre) of
  Just (TEvent ev) -> Right ev
  _ -> field "event" m >>= typedEvent

typedEvent :: V -> H Event
typedEvent (VMap e) = do
  ty <- field "type" e
  p <- field "payload" e
  case ty of
    VStr t -> bad (parseEvent t p)
    _ -> Left (BadRequest "event type must be a string")
typedEvent _ = Left (BadRequest "event must be a map with type and payload")

withInv :: [(Text, V)] -> Bool
withInv m = maybe False truthy (lookupT "with_invariants" m)

violationsV :: Mut -> St -> V
violationsV mut st = VArr (map VStr (checkInvariants mut st))

sessionId :: [(Text, V)] -> H Integer
sessionId m = field "session" m >>= \v -> case v of
  VInt i -> Right i
  _ -> Left (BadRequest "session must be an int")

getSession :: Sessions -> Integer -> H St
getSession ss i = maybe (Left (BadRequest ("unknown session " ++ show i))) Right (M.lookup i ss)

stateArg :: Mut -> [(Text, V)] -> H St
stateArg mut m = field "state" m >>= bad . fromDict mut

-- | apply_order_regime_at_entry on a state, with the arguments in m.
regimeCall :: Mut -> [(Text, V)] -> St -> H St
regimeCall mut m st = do
  lid <- field "local_id" m >>= bad . pyInt
  bad (applyOrderRegime lid (normRegime mut (maybe VNil id (lookupT "regime_at_entry" m))) st)

-- | What the msgpack server read of a request before its map (nothing on the JSON
-- path): the parse of its top-level config (cached by its bytes), and values read
-- straight into typed form from the bytes (their place in the map holds nil).
data Pre = Pre { preCfg :: Maybe (Either String Config), preCfgClean :: Bool, preTyped :: [(Text, Typed)] }
  -- preCfgClean: the config is a cached one known to hold nothing 'VBad' (not walked again)

data Typed = TEvent Event | TOrders [Order]

noPre :: Pre
noPre = Pre Nothing False []

-- | One msgpack request -> new sessions and the result.
handleOp :: Mut -> Pre -> Sessions -> Text -> [(Text, V)] -> (Sessions, H V)
handleOp mut pre ss op m = case op of
  -- the hot ops first: the alternatives are tried in order
  "step" -> withSession $ \i st -> do
    ev <- eventArg pre m
    runStep mut pre ss i st ev m (withInv m)
  "patch" -> withSession $ \i st -> do
    st' <- case lookupT "delta" (preTyped pre) of
      Just (TOrders os) -> pure (withOrders os st)   -- what applyDelta makes of that delta
      _ -> field "delta" m >>= bad . flip (applyDelta mut) st
    pure (M.insert i st' ss, VMap [])
  "hello" -> (ss, Right (VMap [("protocol", VInt 1), ("implementation", VStr "doge-core-exe (shadowdiff haskell port)")
                              , ("version", VStr version), ("ops", VArr (map VStr opsList))]))
  "transition" -> (ss, do
    st <- stateArg mut m
    ev <- eventArg pre m
    env <- envFrom mut pre m
    (st', acts) <- bad (transition env st ev)
    pure (VMap ([("state", toDict st'), ("actions", VArr (map actionTyped acts))]
                ++ [("violations", violationsV mut st') | withInv m])))
  "check_invariants" -> (ss, (\st -> VMap [("violations", violationsV mut st)]) <$> stateArg mut m)
  "echo" -> (ss, Right (VMap [("value", maybe VNil id (lookupT "value" m))]))
  "call" -> case callArgs of
    Left e -> (ss, Left e)
    Right args -> case lookupT "state" args of
      Just _ -> (ss, do st <- stateArg mut args; st' <- regimeCall mut args st; pure (VMap [("state", toDict st')]))
      Nothing -> withSession $ \i st -> do
        st' <- regimeCall mut args st
        pure (M.insert i st' ss, VMap [("delta", stateDelta st st')])
  "open" -> either (\e -> (ss, Left e)) id $ do
    i <- sessionId m
    st <- stateArg mut m
    pure (M.insert i st ss, Right (VMap []))
  "get" -> withSession $ \_ st -> pure (ss, VMap [("state", toDict st)])
  "close" -> withSession $ \i _ -> pure (M.delete i ss, VMap [])
  _ -> (ss, Left (Unsupported ("unsupported op " ++ show (T.unpack op))))
  where
    withSession k = case sessionId m >>= \i -> getSession ss i >>= k i of
      Left e -> (ss, Left e)
      Right (ss', v) -> (ss', Right v)
    callArgs = do
      fn <- field "function" m
      case fn of
        VStr "apply_order_regime_at_entry" -> pure ()
        VStr f -> Left (Unsupported ("unknown function " ++ show (T.unpack f)))
        _ -> Left (BadRequest "function must be a string")
      a <- field "args" m
      case a of
        VMap args -> pure args
        _ -> Left (BadRequest "args must be a map")

-- | The step op once its session, event and context are read (handleOp's "step"
-- and the fast path's 'stepFast' both answer with it): the state stepped, its
-- actions and delta, and the invariants when asked for.
runStep :: Mut -> Pre -> Sessions -> Integer -> St -> Event -> [(Text, V)] -> Bool -> H (Sessions, V)
runStep mut pre ss i st ev m inv = do
  env <- envFrom mut pre m
  (st', acts) <- bad (transition env st ev)
  pure (M.insert i st' ss, VMap ([("actions", VArr (map actionTyped acts)), ("delta", stateDelta st st')]
                                 ++ [("violations", violationsV mut st') | inv]))

-- | A patch that sets the order list (read by 'setOrders').
withOrders :: [Order] -> St -> St
withOrders os st = let !st' = st { sOrders = os } in st'

respond :: V -> H V -> V
respond rid r = case r of
  Right ok -> VMap [("id", rid), ("ok", ok)]
  Left e -> let (k, msg) = case e of
                  BadRequest s -> ("bad_request", s)
                  Unsupported s -> ("unsupported_op", s)
                  Internal s -> ("internal", s)
            in VMap [("id", rid), ("error", VMap [("kind", VStr k), ("message", VStr (T.pack msg))])]

handleRequest :: Mut -> Pre -> Sessions -> V -> (Sessions, V)
handleRequest mut pre ss req = case req of
  VMap m | Just e <- firstBadOf (preCfgClean pre) m ->
    (ss, respond (maybe VNil id (lookupT "id" m)) (Left (BadRequest e)))
  VMap m ->
    let rid = maybe VNil id (lookupT "id" m) in
    case lookupT "op" m of
      Just (VStr op) -> let (ss', r) = handleOp mut pre ss op m in (ss', respond rid r)
      Just _ -> (ss, respond rid (Left (BadRequest "op must be a string")))
      Nothing -> (ss, respond rid (Left (BadRequest "missing field \"op\"")))
  VBad e -> (ss, respond VNil (Left (BadRequest e)))
  _ -> (ss, respond VNil (Left (BadRequest "a request must be a map")))

-- | The first value of a request's entries the decoder could not represent; with
-- skip, the first config is not looked at (a cached one known to hold none).
firstBadOf :: Bool -> [(Text, V)] -> Maybe String
firstBadOf skip = go skip
  where
    go _ [] = Nothing
    go True ((k, _) : rest) | teq k "config" = go False rest
    go s ((_, x) : rest) = case firstBad x of
      Nothing -> go s rest
      r -> r

-- | The first value the decoder could not represent (ext types, non-string keys).
firstBad :: V -> Maybe String
firstBad v = case v of
  VBad e -> Just e
  VArr xs -> foldr (\x r -> maybe r Just (firstBad x)) Nothing xs
  VMap kvs -> foldr (\(_, x) r -> maybe r Just (firstBad x)) Nothing kvs
  _ -> Nothing

-- | Force a response (V's fields are strict, so one traversal evaluates all of
-- it) and write it straight into stdout's buffer. Pure exceptions become internal
-- errors; the failure mutants' ExitCode passes through and ends the process.
safeWrite :: Sessions -> Sessions -> V -> V -> IO Sessions
safeWrite old new rid resp = do
  r <- try $ do
    enc <- evaluate (encodeChecked resp)
    _ <- evaluate new
    pure enc
  case r of
    Right (Just bytes) -> do BB.hPutBuilder stdout (BBE.byteStringCopy bytes); pure new
    Right Nothing -> do BB.hPutBuilder stdout (encV (respondInternal "an integer does not fit msgpack's 64 bits")); pure old
    Left (ex :: SomeException) -> case fromException ex of
      Just (ec :: ExitCode) -> throwIO ec
      Nothing -> do BB.hPutBuilder stdout (encV (respondInternal (show ex))); pure old
  where
    respondInternal msg = respond rid (Left (Internal msg))

-- | Configs seen lately, by their exact msgpack bytes: a session sends the same
-- config map with every step, so it is decoded and parsed once, not per step.
data CfgEntry = CfgEntry { ceRaw :: !B.ByteString, ceVal :: V, ceCfg :: Either String Config, ceClean :: Bool }

newEntry :: B.ByteString -> Int -> Int -> V -> CfgEntry
newEntry buf s e cv = CfgEntry (B.copy (B.take (e - s) (B.drop s buf))) cv (parseConfig cv) (isNothing (firstBad cv))

cfgCacheSize :: Int
cfgCacheSize = 8

cfgHit :: [CfgEntry] -> B.ByteString -> Int -> Maybe (V, Int, CfgEntry)
cfgHit cache bs i = go cache
  where
    avail = B.length bs - i
    go [] = Nothing
    go (e : es) =
      let n = B.length (ceRaw e)
      in if n <= avail && BU.unsafeTake n (BU.unsafeDrop i bs) == ceRaw e then Just (ceVal e, i + n, e) else go es

-- | A step request read straight from the front of the buffer: a fixmap whose keys
-- are all distinct fixstr names among op (= "step"), id, session (an int), event,
-- config, order_size_usd, order_sizes, with_invariants, and that holds nothing the
-- decoder cannot represent; with the offset where it ends. Every read is bounds
-- checked, so it needs no frame scan first: each value but the config is scanned
-- on its own, and a cached config is one byte comparison (a step's bytes are mostly
-- its config). Anything else, a step not all there yet included, is Nothing and
-- goes the generic way.
--
-- Why the step's top-level map has a reader of its own, apart from decodeRequest
-- and handleOp (the generic reading of every op): going the generic way costs a
-- step about 17% more instructions (the map built as values, every key looked up
-- again by name, the op dispatched by text, the request walked for undecodable
-- values), measured on the bundled corpus and a 30-day session. Everything below
-- the top level is shared: the event is 'eventAt' (the one shape table of Wire, which
-- 'parseEvent' reads too), the config is the same cache entry, and the answer is
-- 'runStep', handleOp's "step" itself.
data FastStep = FastStep
  { fsId :: V, fsSession :: Integer, fsEvent :: Event, fsSize :: Maybe V, fsSizes :: Maybe V, fsInv :: Maybe V
  , fsCfg :: Maybe (Int, Int, Maybe CfgEntry), fsCfgV :: V }

fastStep :: [CfgEntry] -> B.ByteString -> Maybe (FastStep, Int)
fastStep cache bs
  | B.null bs = Nothing
  | b0 .&. 0xf0 == 0x80 = go (fromIntegral (b0 .&. 0x0f) :: Int) 1 (0 :: Int) fs0
  | otherwise = Nothing
  where
    b0 = byteAt bs 0
    len = B.length bs
    fs0 = FastStep VNil 0 (TimerTick 0) Nothing Nothing Nothing Nothing VNil
    at i = byteAt bs i
    keyIs i lit = bytesAt bs i lit
    plain = valueAt bs
    go 0 i !seen fs = if seen .&. 0x0d == 0x0d then Just (fs, i) else Nothing   -- op, session, event
    go k i !seen fs
      | i >= len = Nothing
      | kb .&. 0xe0 /= 0xa0 = Nothing
      | idx < 0 || seen .&. bit /= 0 = Nothing
      | otherwise = case idx of
          0 -> if j + 5 <= len && keyIs j "\xa4step" then go (k - 1) (j + 5) seen' fs else Nothing
          1 -> plain j >>= \(v, e) -> go (k - 1) e seen' fs { fsId = v }
          2 -> plain j >>= \(v, e) -> case v of
                 VInt s -> go (k - 1) e seen' fs { fsSession = s }
                 _ -> Nothing
          3 -> eventAt bs j >>= \(ev, e) -> go (k - 1) e seen' fs { fsEvent = ev }
          4 -> case cfgHit cache bs j of
                 Just (_, e, ent) -> if not (ceClean ent) then Nothing else go (k - 1) e seen' fs { fsCfg = Just (j, e, Just ent) }
                 Nothing -> plain j >>= \(v, e) -> go (k - 1) e seen' fs { fsCfg = Just (j, e, Nothing), fsCfgV = v }
          5 -> plain j >>= \(v, e) -> go (k - 1) e seen' fs { fsSize = Just v }
          6 -> plain j >>= \(v, e) -> go (k - 1) e seen' fs { fsSizes = Just v }
          _ -> plain j >>= \(v, e) -> go (k - 1) e seen' fs { fsInv = Just v }
      where
        kb = at i
        n = fromIntegral (kb .&. 0x1f) :: Int
        ks = i + 1
        j = ks + n
        idx :: Int
        idx | j > len = -1
            | otherwise = case n of
                2 | keyIs ks "op" -> 0
                  | keyIs ks "id" -> 1
                7 | keyIs ks "session" -> 2
                5 | keyIs ks "event" -> 3
                6 | keyIs ks "config" -> 4
                14 | keyIs ks "order_size_usd" -> 5
                11 | keyIs ks "order_sizes" -> 6
                15 | keyIs ks "with_invariants" -> 7
                _ -> -1
        bit = 1 `unsafeShiftL` idx :: Int
        seen' = seen + bit

-- | A patch that sets the order list, read straight from the front of the buffer:
-- a fixmap of distinct fixstr keys among op (= "patch"), id, session (an int) and
-- delta, where delta is exactly {"set": {"orders": [order, ...]}} and each order a
-- map of the 13 keys in to_dict order (what the canonical encoder writes). Values
-- are read by position, with 'orderFromValues' (the same readers as from_dict); anything
-- else, an order it cannot read included, is Nothing and goes the generic way
-- (which then also answers any error). A top-level reader of its own for the same
-- reason as 'fastStep'; the delta below it is 'setOrders', the generic path's
-- typed reader of that delta too, and the state change is 'withOrders'.
data FastPatch = FastPatch { fpId :: V, fpSession :: Integer, fpOrders :: [Order] }

fastPatch :: Mut -> B.ByteString -> Maybe (FastPatch, Int)
fastPatch mut bs
  | B.null bs = Nothing
  | b0 .&. 0xf0 == 0x80 = go (fromIntegral (b0 .&. 0x0f) :: Int) 1 (0 :: Int) (FastPatch VNil 0 [])
  | otherwise = Nothing
  where
    b0 = byteAt bs 0
    len = B.length bs
    keyIs i lit = bytesAt bs i lit
    go 0 i !seen fp = if seen .&. 0x0d == 0x0d then Just (fp, i) else Nothing   -- op, session, delta
    go k i !seen fp
      | i >= len = Nothing
      | kb .&. 0xe0 /= 0xa0 = Nothing
      | idx < 0 || seen .&. bit /= 0 = Nothing
      | otherwise = case idx of
          0 -> if j + 6 <= len && keyIs j "\xa5patch" then go (k - 1) (j + 6) seen' fp else Nothing
          1 -> valueAt bs j >>= \(v, e) -> go (k - 1) e seen' fp { fpId = v }
          2 -> valueAt bs j >>= \(v, e) -> case v of
                 VInt sid -> go (k - 1) e seen' fp { fpSession = sid }
                 _ -> Nothing
          _ -> setOrders mut bs j >>= \(os, e) -> go (k - 1) e seen' fp { fpOrders = os }
      where
        kb = byteAt bs i
        n = fromIntegral (kb .&. 0x1f) :: Int
        ks = i + 1
        j = ks + n
        idx :: Int
        idx | j > len = -1
            | otherwise = case n of
                2 | keyIs ks "op" -> 0
                  | keyIs ks "id" -> 1
                7 | keyIs ks "session" -> 2
                5 | keyIs ks "delta" -> 3
                _ -> -1
        bit = 1 `unsafeShiftL` idx :: Int
        seen' = seen + bit

-- | {"set": {"orders": [...]}} at i: the orders and where the delta ends.
setOrders :: Mut -> B.ByteString -> Int -> Maybe ([Order], Int)
setOrders mut bs i0 = do
  let hdr = "\x81\xa3set\x81\xa6orders"
  if i0 + B.length hdr + 1 <= B.length bs && bytesAt bs i0 hdr then Just () else Nothing
  let a = i0 + B.length hdr
      b = byteAt bs a
  (n, i1) <- if b .&. 0xf0 == 0x90 then Just (fromIntegral (b .&. 0x0f), a + 1)
             else if b == 0xdc && a + 3 <= B.length bs
               then Just (fromIntegral (byteAt bs (a + 1)) * 256 + fromIntegral (byteAt bs (a + 2)), a + 3)
             else Nothing
  orders n i1 []
  where
    orders :: Int -> Int -> [Order] -> Maybe ([Order], Int)
    orders 0 i acc = Just (reverse acc, i)
    orders k i acc = do
      (vals, e) <- orderValues i
      o <- either (const Nothing) Just (orderFromValues mut vals)
      orders (k - 1) e (o : acc)
    -- a fixmap of exactly the order's keys, in order
    orderValues i
      | i < B.length bs && byteAt bs i == 0x80 + fromIntegral (length orderKeyBytes) = fields orderKeyBytes (i + 1) []
      | otherwise = Nothing
    fields [] i acc = Just (reverse acc, i)
    fields (kb : kbs) i acc = do
      (s, n) <- fixStrAt bs i
      if n == B.length kb && bytesAt bs s kb then Just () else Nothing
      (v, e) <- valueAt bs (s + n)
      fields kbs e (v : acc)

-- | 'orderKeys' as their UTF-8 bytes.
orderKeyBytes :: [B.ByteString]
orderKeyBytes = map TE.encodeUtf8 orderKeys
{-# NOINLINE orderKeyBytes #-}  -- made once, not at every use

-- | An event read straight from msgpack bytes into its typed form, when it has the
-- usual shape: a fixmap of "type" (a fixstr, one of the names of 'eventShapes') and
-- "payload" (a fixmap of distinct fixstr keys, exactly that shape's fields, its
-- numbers as floats, bools or ints of at most 32 bits). It interprets the same
-- 'Shape' as 'parseEvent' (the one definition of each event), on bytes instead of a
-- decoded map; anything else is Nothing, and the request's event is decoded and
-- read by 'parseEvent', which then also answers any error.
eventAt :: B.ByteString -> Int -> Maybe (Event, Int)
eventAt bs i0 = do
  if i0 < B.length bs && byteAt bs i0 == 0x82 then Just () else Nothing
  (sa, na) <- fixStrAt bs (i0 + 1)
  let va = sa + na
  afterA <- skipped va
  (sb, nb) <- fixStrAt bs afterA
  let vb = sb + nb
  (tyAt, payAt) <- if is sa na "type" && is sb nb "payload" then Just (va, vb)
                   else if is sa na "payload" && is sb nb "type" then Just (vb, va)
                   else Nothing
  (ts, tn) <- fixStrAt bs tyAt
  (sh, fields) <- snd <$> find (\(name, _) -> is ts tn name) shapeBytes
  (ev, end) <- payload payAt sh fields
  -- the two values are adjacent: the event ends after whichever comes last
  pure (ev, if payAt > tyAt then end else ts + tn)
  where
    is s n lit = n == B.length lit && bytesAt bs s lit
    -- the end of the first value, for where the second key starts (type is a fixstr,
    -- the payload a map read in full later)
    skipped i = case fixStrAt bs i of
      Just (s, n) -> Just (s + n)
      Nothing -> case scanFrame bs i 1 of
        Complete e -> Just e
        _ -> Nothing
    payload i sh fields = do
      if i < B.length bs && byteAt bs i .&. 0xf0 == 0x80 then Just () else Nothing
      let n = fromIntegral (byteAt bs i .&. 0x0f)
      if n == length fields then Just () else Nothing
      (vals, end) <- readFields fields n (i + 1) 0 []
      -- every field is there (counted and masked above)
      pure (shMake sh (\k -> fromMaybe (FNum 0) (lookup k vals)), end)
    -- n entries, each a known field seen once (the mask): with as many entries as
    -- fields, each field is there exactly once
    readFields :: [(Int, (B.ByteString, Kind))] -> Int -> Int -> Int -> [(Int, EvField)] -> Maybe ([(Int, EvField)], Int)
    readFields _ 0 j _ acc = Just (acc, j)
    readFields fields k j !seen acc = do
      (s, n) <- fixStrAt bs j
      (idx, (_, kind)) <- find (\(_, (name, _)) -> is s n name) fields
      let bit = 1 `unsafeShiftL` idx :: Int
      if seen .&. bit == 0 then Just () else Nothing
      (v, e) <- case kind of
        Num -> (\(d, e) -> (FNum d, e)) <$> numberAt bs (s + n)
        Kept -> valueAt bs (s + n) >>= \(x, e) -> (FRaw x, e) <$ vNum x
        Any -> (\(x, e) -> (FRaw x, e)) <$> valueAt bs (s + n)
      readFields fields (k - 1) e (seen .|. bit) ((idx, v) : acc)

-- | 'eventShapes' with their names and field names as UTF-8 bytes, made once.
shapeBytes :: [(B.ByteString, (Shape, [(Int, (B.ByteString, Kind))]))]
shapeBytes = [ (TE.encodeUtf8 (shName sh), (sh, zip [0 ..] [(TE.encodeUtf8 k, kind) | (k, kind) <- shFields sh]))
             | sh <- eventShapes ]
{-# NOINLINE shapeBytes #-}

-- | handleOp's "step" on a 'FastStep' ('runStep', as handleOp's); Nothing whenever
-- it would answer an error (the generic reading then answers it).
stepFast :: Mut -> Pre -> Sessions -> FastStep -> Maybe (Sessions, V)
stepFast mut pre ss fs = do
  let i = fsSession fs
  st <- M.lookup i ss
  let m = maybe [] (\v -> [("order_size_usd", v)]) (fsSize fs) ++ maybe [] (\v -> [("order_sizes", v)]) (fsSizes fs)
  (ss', v) <- either (const Nothing) Just (runStep mut pre ss i st (fsEvent fs) m (maybe False truthy (fsInv fs)))
  pure (ss', respond (fsId fs) (Right v))

-- | handleOp's "patch" on a 'FastPatch'; Nothing for an unknown session (the
-- generic path answers that error).
patchFast :: Sessions -> FastPatch -> Maybe (Sessions, V)
patchFast ss fp = do
  let i = fpSession fp
  st <- M.lookup i ss
  pure (M.insert i (withOrders (fpOrders fp) st) ss, respond (fpId fp) (Right (VMap [])))

-- | The top-level values read straight from the bytes into typed form: a step's
-- or transition's event ('eventAt') and a patch's canonical order list
-- ('setOrders'); Nothing leaves the value to the decoder and its usual reader.
typedAt :: Mut -> Text -> Maybe (B.ByteString -> Int -> Maybe (Typed, Int))
typedAt mut k
  | teq k "event" = Just (\bs i -> (\(ev, e) -> (TEvent ev, e)) <$> eventAt bs i)
  | teq k "delta" = Just (\bs i -> (\(os, e) -> (TOrders os, e)) <$> setOrders mut bs i)
  | otherwise = Nothing

serveMsgpack :: Mut -> IO ()
serveMsgpack mut = do
  hSetBinaryMode stdin True
  hSetBinaryMode stdout True
  hSetBuffering stdout (BlockBuffering (Just 65536))
  next M.empty [] B.empty 0 1
  where
    -- buf holds the unconsumed input; (off, owed) is where the frame scan resumes
    -- (a request that arrives in pieces is scanned as it comes: no re-reading it
    -- from the start on every refill). Every request is read the same way: its
    -- map decoded with the config cache and the typed readers of 'typedAt' as
    -- hooks, then answered by 'handleRequest' (the one reader of each op's shape).
    next !ss cache !buf !off !owed
      | off == 0, Just (fs, end) <- fastStep cache buf = answerStep ss cache buf fs end
      | off == 0, Just (fp, end) <- fastPatch mut buf = answerPatch ss cache buf fp end
      | off == 0, Just r <- request cache buf = answer ss cache buf r
      | otherwise = case scanFrame buf off owed of
      Complete end | off > 0, Just (fs, _) <- fastStep cache buf -> answerStep ss cache buf fs end
      Complete end | off > 0, Just (fp, _) <- fastPatch mut buf -> answerPatch ss cache buf fp end
      Complete end -> answer ss cache buf (maybe (plain buf end) id (request cache buf))
      More off' owed' -> refill ss cache buf off' owed'
      Invalid at -> do
        hFlush stdout
        hPutStrLn stderr ("doge-core-exe: input is not msgpack (byte 0xc1 at offset " ++ show at ++ " of a request)")
        exitWith (ExitFailure 2)
    request cache = decodeRequest (cfgHit cache) (typedAt mut)
    -- a complete request always decodes above; this is what it would decode to without the hooks
    plain buf end = (fst (decodeFrame buf 0), Nothing, [], end)
    answer ss cache buf (v, cspan, typed, end) = do
      let (cache', cfg, clean) = case (cspan, v) of
            (Just (_, _, Just e), _) -> (cache, Just (ceCfg e), ceClean e)
            (Just (s, e, Nothing), VMap m) | Just cv <- lookupT "config" m ->
              let ent = newEntry buf s e cv
              in (take cfgCacheSize (ent : cache), Just (ceCfg ent), False)
            _ -> (cache, Nothing, False)
          rid = case v of
            VMap m -> maybe VNil id (lookupT "id" m)
            _ -> VNil
          (ss', resp) = handleRequest mut (Pre cfg clean typed) ss v
      ss'' <- safeWrite ss ss' rid resp
      let rest = B.drop end buf
      -- forced here: a run of requests without a config would otherwise chain
      -- thunks that keep every decoded request alive
      _ <- evaluate cache'
      if B.null rest then refill ss'' cache' B.empty 0 1 else next ss'' cache' rest 0 1
    answerStep ss cache buf fs end = case stepFast mut pre ss fs of
      Nothing -> answer ss cache buf (maybe (plain buf end) id (request cache buf))
      Just (ss', resp) -> do
        ss'' <- safeWrite ss ss' (fsId fs) resp
        _ <- evaluate cache'
        continue ss'' cache' buf end
      where
        (cache', pre) = case fsCfg fs of
          Just (_, _, Just e) -> (cache, Pre (Just (ceCfg e)) True [])
          Just (s, e, Nothing) -> let ent = newEntry buf s e (fsCfgV fs)
                                  in (take cfgCacheSize (ent : cache), Pre (Just (ceCfg ent)) False [])
          Nothing -> (cache, noPre)
    -- a fast patch has no config, so the cache stays as it is
    answerPatch ss cache buf fp end = case patchFast ss fp of
      Nothing -> answer ss cache buf (maybe (plain buf end) id (request cache buf))
      Just (ss', resp) -> do
        ss'' <- safeWrite ss ss' (fpId fp) resp
        continue ss'' cache buf end
    continue ss cache buf end = let rest = B.drop end buf in
      if B.null rest then refill ss cache B.empty 0 1 else next ss cache rest 0 1
    -- Answers go out before we block for more input (pipelining: a batch is
    -- answered in one write, and nothing waits in our buffer while we read).
    refill ss cache buf off owed = do
      hFlush stdout
      more <- readAfter buf
      if B.length more == B.length buf
        then if B.null buf then exitSuccess else do
          hPutStrLn stderr ("doge-core-exe: truncated msgpack object at end of input (" ++ show (B.length buf) ++ " bytes)")
          exitWith (ExitFailure 2)
        else next ss cache more off owed

-- | The unconsumed bytes followed by the next read from stdin (up to 256 KiB; just
-- the bytes at end of input). The read goes straight in after them: hGetSome plus
-- an append would copy every input byte twice (hGetSome trims a short read, and a
-- pipe's reads are short).
readAfter :: B.ByteString -> IO B.ByteString
readAfter buf = BI.createUptoN (n + chunk) $ \p -> do
  BU.unsafeUseAsCString buf (\src -> BI.memcpy p (castPtr src) n)
  got <- hGetBufSome stdin (p `plusPtr` n) chunk
  pure (n + got)
  where
    n = B.length buf
    chunk = 262144

------------------------------------------------------------------------------
-- JSON transport

jsonHandle :: Mut -> V -> Either String V
jsonHandle mut req = case req of
  VMap m -> case lookupT "method" m of
    Just (VStr "transition") -> do
      st <- getF "state" m >>= fromDict mut
      ev <- getF "event" m >>= inferEvent
      env <- either errStr Right (envFrom mut noPre m)
      (st', acts) <- transition env st ev
      pure (VMap [("state", toDict st'), ("actions", VArr (map (snd . actionPayload) acts))])
    Just (VStr "check_invariants") -> do
      st <- getF "state" m >>= fromDict mut
      pure (VMap [("violations", violationsV mut st)])
    Just (VStr "apply_order_regime_at_entry") -> do
      let p = case lookupT "params" m of
            Just (VMap pm) -> pm
            _ -> m
      st <- getF "state" p >>= fromDict mut
      st' <- either errStr Right (regimeCall mut p st)
      pure (VMap [("state", toDict st')])
    Just (VStr other) -> Left ("unknown method " ++ show (T.unpack other))
    _ -> Left "missing method"
  _ -> Left "request must be a JSON object"
  where
    getF k m = maybe (Left ("missing field " ++ show (T.unpack k))) Right (lookupT k m)
    errStr e = Left $ case e of
      BadRequest s -> s
      Unsupported s -> s
      Internal s -> s

jsonLine :: Mut -> B.ByteString -> IO (Bool, BB.Builder)
jsonLine mut line = do
  let out = case parseJson line of
        Left e -> Left ("invalid JSON: " ++ e)
        Right v -> jsonHandle mut v
      render (Left e) = encJson (VMap [("error", VStr (T.pack e))])
      render (Right v) = encJson v
  r <- try (evaluate (let bs = BB.toLazyByteString (render out) in L.length bs `seq` bs))
  case r of
    Right bs -> pure (either (const False) (const True) out, BB.lazyByteString bs)
    Left (ex :: SomeException) -> case fromException ex of
      Just (ec :: ExitCode) -> throwIO ec
      Nothing -> pure (False, encJson (VMap [("error", VStr (T.pack ("internal: " ++ show ex)))]))

serveJsonLines :: Mut -> IO ()
serveJsonLines mut = do
  hSetBinaryMode stdin True
  hSetBinaryMode stdout True
  hSetBuffering stdout (BlockBuffering (Just 65536))
  loop B.empty
  where
    loop buf = do
      chunk <- B.hGetSome stdin 65536
      if B.null chunk
        then do
          if B.all (`elem` [32, 9, 13]) buf then pure () else emit buf
          hFlush stdout
        else do
          rest <- lines' (buf <> chunk)
          hFlush stdout
          loop rest
    lines' b = case BC.elemIndex '\n' b of
      Nothing -> pure b
      Just i -> do
        let line = B.take i b
        if BC.all (`elem` (" \t\r" :: String)) line then pure () else emit line
        lines' (B.drop (i + 1) b)
    emit line = do
      (_, out) <- jsonLine mut line
      BB.hPutBuilder stdout (out <> BB.char7 '\n')

serveJsonOnce :: Mut -> IO ()
serveJsonOnce mut = do
  hSetBinaryMode stdin True
  input <- B.getContents
  (ok, out) <- jsonLine mut (BC.dropWhileEnd (`elem` (" \t\r\n" :: String)) input)
  BB.hPutBuilder stdout (out <> BB.char7 '\n')
  hFlush stdout
  if ok then exitSuccess else exitWith (ExitFailure 1)
