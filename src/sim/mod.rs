//! The simulated appliance pair.
