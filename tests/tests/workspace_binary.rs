//! `workspace_binary` builds a package into the running test's target dir and hands back a
//! binary that runs.

use host_util::CommandExt;

#[test]
fn builds_the_agent_into_this_target_dir() {
    let exe = e2e_tests::workspace_binary("ecs-agent");
    assert_eq!(exe, e2e_tests::target_dir().join("debug/ecs-agent"));
    // Once per process: the second call does not run cargo again and gives the same path.
    assert_eq!(e2e_tests::workspace_binary("ecs-agent"), exe);
    let help = std::process::Command::new(&exe)
        .arg("--help")
        .run_stdout()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(help.contains("Usage"), "{help}");
}
