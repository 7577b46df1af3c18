//! validation filter core (to be written).
