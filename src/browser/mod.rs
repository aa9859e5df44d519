//! Browser sessions: the server-side session store and cookie rules (`session`), and the
//! sidecar's own pages (`pages`). Never imports `request` or `auth_api`.

pub mod pages;
pub mod session;
pub mod templates;
