# The mailc package. `cargoLock.lockFile` means there is no vendor hash to
# update when dependencies change. Requires Rust >= 1.95 in nixpkgs.
{
  lib,
  rustPlatform,
}:
let
  manifest = (lib.importTOML ../Cargo.toml).package;
in
rustPlatform.buildRustPackage {
  pname = manifest.name;
  inherit (manifest) version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      ../examples
      ../schema
      ../README.md
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The tests run the real server on loopback, which the build sandbox
  # allows; the interop tests need outside tools and are `#[ignore]`d.
  doCheck = true;

  meta = {
    description = "A mail server (SMTP, local delivery, IMAP, POP3) declared in one checked KDL file";
    license = lib.licenses.agpl3Plus;
    mainProgram = "mailc";
    platforms = lib.platforms.linux;
  };
}
