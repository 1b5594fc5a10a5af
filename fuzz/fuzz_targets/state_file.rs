#![no_main]
// Whatever the bytes, bt_watchdog::fuzzing::state_file returns: a panic or an unbounded allocation
// is a bug (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| bt_watchdog::fuzzing::state_file(data));
