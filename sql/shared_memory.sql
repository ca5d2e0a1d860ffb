-- What the preloaded library keeps in shared memory (src/shared_memory.rs).
REVOKE EXECUTE ON FUNCTION kakunin.shared_memory() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kakunin.shared_memory() TO kakunin_admin;
COMMENT ON FUNCTION kakunin.shared_memory() IS
    'What the library keeps in shared memory when preloaded (shared_preload_libraries): {"preloaded", "started_at" (when shared memory was initialised; proofs issued less than 60 s after it are refused), "proof_replay" and "verify_cache": {"capacity" (kakunin.proof_replay_capacity, kakunin.verify_cache_capacity), "entries", "bytes"} or NULL when not preloaded}. kakunin_admin only (42501).';
