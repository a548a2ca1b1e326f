//! `ecs-agent`: runs on the appliance. Brings it up at boot and runs its lifecycle.

fn main() {
    println!("ecs-agent {}", env!("CARGO_PKG_VERSION"));
}
