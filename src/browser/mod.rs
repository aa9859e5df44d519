//! Browser sessions: the server-side session store and cookie rules (`session`), the
//! sidecar's own pages (`pages`, with `templates`), and federated sign-in through the pool's
//! domain (`federated` owns the flow, `oauth` the domain's endpoints). Never imports
//! `request` or `auth_api`.

pub mod federated;
pub mod oauth;
pub mod pages;
pub mod session;
pub mod templates;
