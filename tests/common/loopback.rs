//! The loopback HTTP/1.1 server the fakes of outside services run on: the library's, which the
//! demo's simulated services use too (one implementation).
#![allow(unused_imports)]

pub use pgship::demo::loopback::*;
