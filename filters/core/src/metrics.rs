//! metrics filter core (to be written).
