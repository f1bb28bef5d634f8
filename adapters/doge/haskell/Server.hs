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
  "step" -> withSession $ \i st -> do
    ev <- eventArg pre m
    env <- envFrom mut pre m
    (st', acts) <- bad (transition env st ev)
    pure (M.insert i st' ss, VMap ([("actions", VArr (map actionTyped acts)), ("delta", stateDelta st st')]
                                   ++ [("violations", violationsV mut st') | withInv m]))
  "patch" -> withSession $ \i st -> do
    st' <- case lookupT "delta" (preTyped pre) of
      Just (TOrders os) -> pure st { sOrders = os }   -- what applyDelta makes of that delta
      _ -> field "delta" m >>= bad . flip (applyDelta mut) st
    pure (M.insert i st' ss, VMap [])
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
  VMap m | Just e <- firstBadOf (if preCfgClean pre then dropConfig m else m) ->
    (ss, respond (maybe VNil id (lookupT "id" m)) (Left (BadRequest e)))
  VMap m ->
    let rid = maybe VNil id (lookupT "id" m) in
    case lookupT "op" m of
      Just (VStr op) -> let (ss', r) = handleOp mut pre ss op m in (ss', respond rid r)
      Just _ -> (ss, respond rid (Left (BadRequest "op must be a string")))
      Nothing -> (ss, respond rid (Left (BadRequest "missing field \"op\"")))
  VBad e -> (ss, respond VNil (Left (BadRequest e)))
  _ -> (ss, respond VNil (Left (BadRequest "a request must be a map")))

-- | The request's entries but its first config.
dropConfig :: [(Text, V)] -> [(Text, V)]
dropConfig kvs = case break (teq "config" . fst) kvs of
  (pre, _ : post) -> pre ++ post
  _ -> kvs

firstBadOf :: [(Text, V)] -> Maybe String
firstBadOf = foldr (\(_, x) r -> maybe r Just (firstBad x)) Nothing

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
      | off == 0, Just r <- request cache buf = answer ss cache buf r
      | otherwise = case scanFrame buf off owed of
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
