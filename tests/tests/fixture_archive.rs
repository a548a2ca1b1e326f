//! The fixture archive: one `docker save` of the fixture images (database, app, app versions), which machine.yml `images:`
//! bakes into an appliance. Needs root (the private dockerd).

use e2e_tests::docker::{APP_IMAGE, POSTGRES_IMAGE, fixture_archive, fixture_images};
use host_util::{CommandExt, Tool};

#[test]
fn holds_both_fixture_images_under_their_tags() {
    let archive = fixture_archive();
    let manifest = Tool::new("tar", "tar")
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
        .arg("-xOf")
        .arg(&archive)
        .arg("manifest.json")
        .run_stdout()
        .unwrap_or_else(|e| panic!("{e}"));
    for tag in fixture_images() {
        assert!(
            manifest.contains(&format!("\"{tag}\"")),
            "{tag} not in {manifest}"
        );
    }
    let ids = std::fs::read_to_string(archive.with_extension("tar.ids")).unwrap();
    assert!(ids.contains(POSTGRES_IMAGE) && ids.contains(APP_IMAGE), "{ids}");
    // A second call in the same process gives the same file.
    assert_eq!(fixture_archive(), archive);
}
