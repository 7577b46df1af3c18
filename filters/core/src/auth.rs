//! auth filter core (to be written).
