# Golden tests of nix/kdl.nix, runnable without nixpkgs:
#   nix-instantiate --store dummy:// --eval --strict --json nix/tests/renderer.nix
# evaluates to { failures = [ ... ]; passed = N; }; `failures` must be empty.
let
  kdl = import ../kdl.nix;
  cases = [
    {
      name = "scalars";
      input = {
        hostname = "mail.example.com";
        insecure-open-relay = false;
        state = "/var/lib/mailc";
      };
    }
    {
      name = "args-props-children";
      input = {
        listen = [
          {
            _args = [
              "smtp"
              "0.0.0.0:25"
            ];
            _props.max-connections = 100;
          }
          {
            _args = [
              "submissions"
              "[::]:465"
            ];
          }
        ];
        tls = {
          _props = {
            cert = "/run/credentials/mailc.service/tls-cert";
            key = "/run/credentials/mailc.service/tls-key";
          };
        };
        inbound = {
          max-message-size = "50MiB";
          spf._props.fail = "reject";
        };
      };
    }
    {
      name = "nested-domain";
      input = {
        domain = {
          _args = [ "example.com" ];
          dkim._props.selector = "mailc1";
          mailbox = [
            {
              _args = [ "alice" ];
              _props.password-file = "/run/credentials/mailc.service/mailbox-alice@example.com";
              alias = [
                "postmaster"
                "abuse"
              ];
            }
          ];
          plus-separator = null;
        };
      };
    }
    {
      name = "escaping";
      input = {
        hostname = "a \"quoted\" \\ back\nslash\ttab";
        "odd name" = "x";
        "true" = 1;
      };
    }
  ];
  run = c: {
    inherit (c) name;
    got = kdl.toKDL c.input;
    want = builtins.readFile (./golden + "/${c.name}.kdl");
  };
  results = map run cases;
  failures = builtins.filter (r: r.got != r.want) results;
in
{
  passed = builtins.length results - builtins.length failures;
  failures = map (f: {
    inherit (f) name got want;
  }) failures;
}
