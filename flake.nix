{
  description = "mailc: a mail server (SMTP, local delivery, IMAP, POP3) declared in one checked KDL file";

  # nixpkgs is the only input. Requires Nix >= 2.18 and Rust >= 1.95 in nixpkgs.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: {
        default = pkgs.callPackage ./nix/package.nix { };
      });

      overlays.default = final: _prev: {
        mailc = final.callPackage ./nix/package.nix { };
      };

      nixosModules.default = ./nix/module.nix;

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.system}.default ];
          packages = [
            pkgs.clippy
            pkgs.rustfmt
            pkgs.swaks
            pkgs.isync
            pkgs.python3
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.system}.default;

        # The builtins-only KDL renderer against its golden files.
        renderer =
          let
            result = import ./nix/tests/renderer.nix;
          in
          assert result.failures == [ ];
          pkgs.runCommand "mailc-renderer-goldens" { } "echo ${toString result.passed} passed > $out";

        # The module evaluates, and the config it generates passes `mailc check`.
        module =
          let
            system = nixpkgs.lib.nixosSystem {
              inherit (pkgs) system;
              modules = [
                self.nixosModules.default
                {
                  boot.isContainer = true;
                  system.stateVersion = "25.11";
                  services.mailc = import ./nix/tests/examples/multi-domain.nix;
                  security.acme = {
                    acceptTerms = true;
                    defaults.email = "admin@example.org";
                  };
                }
              ];
            };
          in
          system.config.environment.etc."mailc/config.kdl".source;

        vm = import ./nix/tests/vm.nix { inherit self pkgs; };
      });
    };
}
