-- | Seeded porting bugs, one switched on at a time with --mutant NAME.
-- Each entry says which input exposes it; they are meant to be rare-ish
-- (not every event) but reachable by a random stream or a crafted state.
module Mutants (Mutant(..), catalogue, mutantByName, mutantName, mutantsByNames) where

data Mutant
  = RoundScaledDouble      -- round_price as round(x * 10^n) / 10^n in doubles.
                           --   Exposed by prices whose scaled value lands near a .5 tie,
                           --   e.g. an entry at market 0.12345675 (price_decimals 6) or 2.675 with 2 decimals.
  | VolumeRoundHalfUp      -- volume float(round(raw)) rounds ties away from zero.
                           --   Exposed by size/price = x.5 exactly, e.g. order_size_usd 2.5 at price 0.2 (12.5 -> 13 not 12).
  | S1TimeoutStrict        -- S1 orphan needs age > s1_orphan_after_sec instead of >=.
                           --   Exposed by a TimerTick exactly s1_orphan_after_sec after entry_filled_at.
  | S2TimeoutStrict        -- S2 orphan needs now - s2_entered_at > s2_orphan_after_sec instead of >=.
                           --   Exposed by a TimerTick exactly s2_orphan_after_sec after s2_entered_at.
  | RefreshDriftStrict     -- refresh skips only when drift < refresh_pct (instead of <=).
                           --   Exposed by a PriceTick making drift exactly refresh_pct (entry 99, market 100, refresh 1.0).
  | S2WorseLegTieBuy       -- S2 worse leg: buy exit on equal distance (>= instead of >).
                           --   Exposed by S2 timeout with exits symmetric around the market (99 / 101 at 100).
  | EvictNewestFirst       -- recovery-cap eviction ranks newest orphaned_at first on distance ties.
                           --   Exposed by a cap eviction between two recoveries at the same distance.
  | QuoteFeeSwappedRecovery -- recovery bookings charge quote_fee on the wrong side (A: exit fee, B: entry fee).
                           --   Exposed by a RecoveryFillEvent (or cap eviction) whose fee differs from entry_fee.
  | BreakEvenCountsAsLoss  -- consecutive_losses increments on net <= 0 (break-even counted as a loss).
                           --   Exposed by an exit fill whose net profit is exactly 0.0.
  | LossCooldownOffByOne   -- loss cooldown starts at consecutive_losses > loss_cooldown_start.
                           --   Exposed by the loss_cooldown_start-th consecutive loss (5 by default).
  | CycleMaxDropped        -- after an exit fill cycle_T = order.cycle + 1 (max with cycle_T dropped).
                           --   Exposed by an exit fill whose order.cycle + 1 < cycle_T (state with cycle_a ahead of its orders).
  | AntiChaseKeepsCooldown -- anti-chase reset clears consecutive_refreshes but keeps refresh_cooldown_until.
                           --   Exposed by a refresh after the refresh cooldown expired (count >= max, cooldown_until > 0).
  | RefreshIgnoresDirection -- consecutive refresh count grows even when the direction flips.
                           --   Exposed by two refreshes of the same trade in opposite directions.
  | RegimeCaseSensitive    -- regime names only match upper case ("bullish" -> None).
                           --   Exposed by a state carrying regime_at_entry "bullish" / "Ranging".
  | InvariantTypo          -- "s2_entered_at must be None outside S2" (Python-ism typo).
                           --   Exposed by check_invariants on a state with s2_entered_at set outside S2.
  | CycleDefaultZero       -- from_dict: a missing cycle_a / cycle_b defaults to 0.
                           --   Exposed by an old state map without cycle_a (backward_compat fixture).
  | ProfitPctNoFallback    -- from_dict: missing profit_pct_runtime ignores a profit_pct key (takes 1.0).
                           --   Exposed by a state with profit_pct 2.0 and no profit_pct_runtime, then an entry fill.
  | S2KeptAfterFill        -- s2_entered_at is not cleared after a fill that leaves S2.
                           --   Exposed by an exit fill in S2 after a TimerTick set s2_entered_at.
  | EntryPctBIgnored       -- trade B's entry distance uses entry_pct_a.
                           --   Exposed by a config with entry_pct_a != entry_pct_b and a B entry placement.
  | BackoffOffByOne        -- backoff multiplier uses (n - loss_backoff_start) instead of (... + 1).
                           --   Exposed by a follow-up entry after loss_backoff_start consecutive losses.
  | CrashZeroFeeExit       -- failure: the process dies on an exit FillEvent with fee exactly 0.
                           --   Exposed by FillEvent(fee=0.0) on an exit order.
  | CrashHugeInt           -- failure: dies (Int64 overflow check) on a state int >= 2^63.
                           --   Exposed by a state with next_order_id 2**63 (e.g. "9223372036854775808").
  | HangPriceAtOrder       -- failure: loops forever on a PriceTick whose price equals an open order's price.
                           --   Exposed by PriceTick(price == some order.price).
  | GarbageNonAsciiTxid    -- failure: writes non-msgpack bytes to stdout on a fill whose txid is not ASCII.
                           --   Exposed by FillEvent / RecoveryFillEvent with txid "TX-\x00e9".
  | HistoryCapped          -- completed_cycles kept as a bounded history: a booking drops the oldest
                           --   record once 32 are held. Exposed by a booking on a state with >= 32
                           --   completed cycles: a bot that has run a while (a bot_runtime.json), never a
                           --   synthetic state (<= 3 cycles) within a short walk.
  -- DOGE_REDUCER.md section 9 (bit-exact details): float grouping and coercions.
  | EvictFeeOldGrouping    -- eviction fee as x * volume * maker_fee_pct / 100 (not x * volume * (maker_fee_pct / 100.0)).
                           --   Exposed by about a third of realistic cap evictions (14 steps of the real bot's recorded day).
  | FeeIntBookedAsInt      -- booking does not float() an int fee: exit_fee (and a B quote_fee) written as int 0, not 0.0.
                           --   Exposed, as a wire type only, by an exit / recovery fill with fee 0 sent as an int.
  | RecoveryEntryTimeTruthy -- recovery entry time: entry_filled_at when it is non-zero (Python `or`), not when > 0.
                           --   Exposed by a recovery fill or eviction whose entry_filled_at is negative or NaN.
  | EvictByPosition        -- eviction removes exactly `overflow` recoveries by position, not every one sharing a selected id.
                           --   Exposed by a cap eviction when two recoveries share the evicted recovery_id.
  | RoundHalfUpExactTie    -- round_price rounds an exact binary tie half-up instead of to even.
                           --   Exposed only by a price whose exact value is a tie at price_decimals,
                           --   e.g. 0.1640625 (21 x 2^-7) at 6 decimals -> 0.164063 instead of 0.164062.
  | EvictKeepsRankOrder    -- recovery-cap eviction keeps the survivors in eviction-rank order, not book order.
                           --   Exposed by a cap eviction with three or more recoveries in the book.
  | ModeSourceDefaultEmpty -- from_dict: a missing mode_source defaults to "" instead of "none".
                           --   Exposed only by a state map without mode_source (any present value loads right).
  deriving (Eq, Show, Enum, Bounded)

-- | name, category, description
catalogue :: [(Mutant, String, String, String)]
catalogue =
  [ (RoundScaledDouble, "round_scaled_double", "rounding", "round_price computes round(x*10^n)/10^n in doubles instead of Python's exact round")
  , (VolumeRoundHalfUp, "volume_round_half_up", "rounding", "order volume rounds .5 ties away from zero instead of to even")
  , (S1TimeoutStrict, "s1_timeout_strict", "boundary", "S1 orphan timeout uses age > s1_orphan_after_sec instead of >=")
  , (S2TimeoutStrict, "s2_timeout_strict", "boundary", "S2 orphan timeout uses elapsed > s2_orphan_after_sec instead of >=")
  , (RefreshDriftStrict, "refresh_drift_strict", "boundary", "stale-entry refresh skips only when drift < refresh_pct instead of <=")
  , (S2WorseLegTieBuy, "s2_worse_leg_tie_buy", "tie-break", "S2 timeout orphans the buy exit when both legs are equally far")
  , (EvictNewestFirst, "evict_newest_first", "recovery-cap", "recovery-cap eviction prefers the newest orphan on distance ties")
  , (QuoteFeeSwappedRecovery, "quote_fee_swapped_recovery", "fees", "recovery bookings put quote_fee on the wrong side (A exit fee, B entry fee)")
  , (BreakEvenCountsAsLoss, "break_even_counts_as_loss", "loss-counters", "consecutive_losses increments on net <= 0 instead of net < 0")
  , (LossCooldownOffByOne, "loss_cooldown_off_by_one", "loss-counters", "loss cooldown starts only when losses > loss_cooldown_start")
  , (CycleMaxDropped, "cycle_max_dropped", "cycle-counters", "exit fill sets cycle_T = order.cycle + 1 without max(cycle_T, ...)")
  , (AntiChaseKeepsCooldown, "anti_chase_keeps_cooldown", "refresh", "anti-chase reset clears the refresh count but keeps refresh_cooldown_until")
  , (RefreshIgnoresDirection, "refresh_ignores_direction", "refresh", "consecutive refresh count grows even when the refresh direction flips")
  , (RegimeCaseSensitive, "regime_case_sensitive", "normalisation", "regime names are matched case-sensitively (only BEARISH/RANGING/BULLISH)")
  , (InvariantTypo, "invariant_typo", "invariants", "violation string says 'None' instead of 'null' for s2_entered_at outside S2")
  , (CycleDefaultZero, "cycle_default_zero", "from_dict", "from_dict defaults a missing cycle_a/cycle_b to 0 instead of 1")
  , (ProfitPctNoFallback, "profit_pct_no_fallback", "from_dict", "from_dict ignores profit_pct when profit_pct_runtime is missing")
  , (S2KeptAfterFill, "s2_kept_after_fill", "s2-timer", "fills do not clear s2_entered_at when they leave S2")
  , (EntryPctBIgnored, "entry_pct_b_ignored", "config", "trade B's entry distance uses entry_pct_a instead of entry_pct_b")
  , (BackoffOffByOne, "backoff_off_by_one", "loss-counters", "backoff multiplier uses (n - loss_backoff_start) without the +1")
  , (CrashZeroFeeExit, "crash_zero_fee_exit", "failure", "process dies on an exit fill whose fee is exactly 0")
  , (CrashHugeInt, "crash_huge_int", "failure", "process dies on a state integer >= 2^63 (Int64 port assumption)")
  , (HangPriceAtOrder, "hang_price_at_order", "failure", "loops forever on a PriceTick at exactly an open order's price")
  , (GarbageNonAsciiTxid, "garbage_non_ascii_txid", "failure", "writes non-msgpack bytes to stdout on a fill with a non-ASCII txid")
  , (HistoryCapped, "history_capped", "history", "completed_cycles keeps only the latest 32 bookings (needs a real state with a long history)")
  -- section 9 (bit-exact details)
  , (EvictFeeOldGrouping, "evict_fee_old_grouping", "bit-exact", "eviction fee computed as x*volume*maker_fee_pct/100 instead of x*volume*(maker_fee_pct/100.0)")
  , (FeeIntBookedAsInt, "fee_int_booked_as_int", "bit-exact", "booking keeps an int fee an int (exit_fee 0, not 0.0): no float() when booking")
  , (RecoveryEntryTimeTruthy, "recovery_entry_time_truthy", "bit-exact", "recovery entry time takes a non-zero entry_filled_at (negative/NaN too) instead of only > 0")
  , (EvictByPosition, "evict_by_position", "bit-exact", "cap eviction removes recoveries by position, not every recovery sharing a selected id")
  , (RoundHalfUpExactTie, "round_half_up_exact_tie", "rounding", "round_price rounds exact binary ties at price_decimals half-up instead of to even")
  , (EvictKeepsRankOrder, "evict_keeps_rank_order", "recovery-cap", "recovery-cap eviction keeps the survivors in rank order (3+ recoveries)")
  , (ModeSourceDefaultEmpty, "mode_source_default_empty", "from_dict", "from_dict defaults a missing mode_source to \"\" instead of \"none\"")
  ]

mutantName :: Mutant -> String
mutantName m = head ([n | (m', n, _, _) <- catalogue, m' == m] ++ [show m])

mutantByName :: String -> Maybe Mutant
mutantByName s = case [m | (m, n, _, _) <- catalogue, n == s] of
  (m:_) -> Just m
  [] -> Nothing

-- | A comma-separated list of names (--mutant a,b,c): the mutants, or the first unknown name.
mutantsByNames :: String -> Either String [Mutant]
mutantsByNames s = mapM one (splitOn s)
  where
    one n = maybe (Left n) Right (mutantByName n)
    splitOn str = case break (== ',') str of
      (a, []) -> [a]
      (a, _ : rest) -> a : splitOn rest
