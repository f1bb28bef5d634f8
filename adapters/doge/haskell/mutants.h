/* The seeded mutants (Mutants.hs, Sabotage.hs) are compiled only into
   doge-core-mutants (build.sh passes -DMUTANTS). In doge-core-exe, the binary a
   takeover ships, each switch below is the constant False (or a no-op), the
   mutant's name is gone from the source before GHC sees it, and the code behind
   it is dead and dropped.
     MUTANT(Name)          in the reducer's monad: is this mutant switched on?
     MUTANT_IN(Name, mut)  in pure code, on the switched-on set mut
     SABOTAGE(f)           a failure mutant's side effect on the state */
#ifdef MUTANTS
#define MUTANT(m) (isMut m)
#define MUTANT_IN(m, ms) (elem m ms)
#define SABOTAGE(f) (sabotage (f))
#else
#define MUTANT(m) (pure False)
#define MUTANT_IN(m, ms) (seedOff ms)
#define SABOTAGE(f) (pure ())
#endif
