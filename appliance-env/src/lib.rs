//! The env.yml model: one typed, validated description of an appliance, shared by `ecs-build`
//! (which generates and checks it) and `ecs-agent` (which reads it at boot).
//! It knows nothing of disk images or of how the agent applies the settings.
