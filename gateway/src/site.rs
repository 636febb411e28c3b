//! The site as the health engine sees it: the checked site file with typed ids and every
//! reference resolved. Built by the `site` crate (`site::typed`); re-exported here so that
//! the engine reads `site::Site` as before.

pub use ::site::typed::*;
