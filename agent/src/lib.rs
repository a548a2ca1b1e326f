//! The appliance agent's logic: `ecs-agent start` brings the appliance up at every boot as
//! ordered steps (env, storage, postgres, database, app-dirs, tls, mail, containers), each in its own module;
//! the lifecycle commands after it (backup, recover, ...) run in one frame (`lifecycle`: the lock,
//! the record, the report).
//!
//! It owns the appliance's runtime: where env.yml comes from, the data disks, the database
//! decision, TLS, the compose project and the maintenance page. It knows nothing of how
//! images are built; env.yml's model belongs to appliance-env.

pub mod appdef;
pub mod appdirs;
pub mod backup;
pub mod client_ca;
pub mod context;
pub mod database;
pub mod docker;
pub mod envfile;
pub mod firewall;
pub mod first_user;
pub mod frontend;
pub mod frontend_tls;
pub mod gnupg;
pub mod lifecycle;
pub mod lock;
pub mod mail;
pub mod migrate;
pub mod recover;
pub mod report;
pub mod scram;
pub mod snapshot;
pub mod start;
pub mod status;
pub mod storage;
pub mod tls;
pub mod tools;
pub mod update;
pub mod upgrade;
pub mod userdata;
