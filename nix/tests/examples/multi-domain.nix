# `services.mailc` for three domains: shared mailboxes, fan-out aliases,
# a catch-all, forwarding, extra settings. Rendered and checked in CI by
# tests/nix.rs (`mailc check --offline`).
{
  enable = true;
  openFirewall = true;
  hostname = "mx1.example.org";
  listeners = [
    {
      kind = "smtp";
      address = "0.0.0.0:25";
    }
    {
      kind = "smtp";
      address = "[::]:25";
    }
    {
      kind = "submissions";
      address = "0.0.0.0:465";
    }
    {
      kind = "imaps";
      address = "0.0.0.0:993";
    }
    {
      kind = "pop3s";
      address = "0.0.0.0:995";
    }
  ];
  tls.acmeHost = "mx1.example.org";
  domains = {
    "example.org" = {
      mailboxes = {
        alice = {
          hashedPasswordFile = "/run/keys/alice.hash";
          quota = "5GiB";
          aliases = [
            "postmaster"
            "hostmaster"
          ];
        };
        bob.hashedPasswordFile = "/run/keys/bob.hash";
      };
      aliases = {
        team = [
          "alice"
          "bob"
          "dana@partner.example"
        ];
        info = [ "team" ];
      };
      dmarc = {
        policy = "reject";
        rua = "postmaster@example.org";
      };
    };
    "example.net" = {
      aliases.postmaster = [ "alice@example.org" ];
      catchAll = "bob@example.org";
      extraSettings.plus-separator = "-";
    };
    "bücher.example" = {
      mailboxes.joerg.hashedPasswordFile = "/run/keys/joerg.hash";
      aliases.postmaster = [ "joerg" ];
      dkimSelectors = [ "b2026" ];
      dmarc.policy = "none";
    };
  };
  settings = {
    inbound = {
      max-message-size = "50MiB";
      spf._props.fail = "reject";
    };
    limits.max-connections-per-ip = 20;
    log._props.format = "json";
  };
}
