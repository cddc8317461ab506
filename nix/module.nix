# services.mailc: a mail server declared in one checked KDL file.
#
# The options are turned into a configuration by ./config.nix and rendered
# to KDL v2 by ./kdl.nix. The result is checked with `mailc check --offline`
# while the system is built (secrets are not in the sandbox), installed as
# /etc/mailc/config.kdl, checked fully in ExecStartPre, and a change reloads
# the service (SIGHUP: the new tables are swapped in, connections keep the
# old ones) instead of restarting it. Secrets only ever travel as paths:
# LoadCredential hands them to the service; nothing secret enters the store.
#
# Requires Nix >= 2.18 and a nixpkgs with Rust >= 1.95.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkEnableOption
    mkIf
    mkOption
    types
    ;
  cfg = config.services.mailc;
  kdl = import ./kdl.nix;

  # `sendmail ARGS` = `mailc sendmail ARGS` (config: /etc/mailc/config.kdl).
  sendmailCommand = pkgs.writeShellScriptBin "sendmail" ''
    exec ${lib.getExe cfg.package} sendmail "$@"
  '';

  acmeDirectory =
    if cfg.tls.acmeHost != null then config.security.acme.certs.${cfg.tls.acmeHost}.directory else null;

  generated = import ./config.nix {
    inherit (cfg) hostname listeners settings;
    stateDir = "/var/lib/mailc";
    tls = {
      inherit (cfg.tls) selfSigned certFile keyFile;
      inherit acmeDirectory;
    };
    domains = lib.mapAttrs (_: d: {
      inherit (d)
        catchAll
        dkimSelectors
        dmarc
        extraSettings
        aliases
        ;
      mailboxes = lib.mapAttrs (_: m: {
        inherit (m)
          hashedPasswordFile
          quota
          aliases
          sendAs
          ;
      }) d.mailboxes;
    }) cfg.domains;
  };

  renderedConfig = pkgs.writeText "mailc.kdl" (kdl.toKDL generated.settings);
  rawConfig = if cfg.configFile != null then cfg.configFile else renderedConfig;

  # Checked at build time: a broken config fails `nixos-rebuild`, not the mail.
  checkedConfig = pkgs.runCommand "mailc-config.kdl" { } ''
    ${lib.getExe cfg.package} check --offline ${rawConfig}
    cp ${rawConfig} $out
  '';

  mailboxOpts = {
    options = {
      hashedPasswordFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "File with the password hash (`mailc hash-password`); passed with LoadCredential, never copied into the store. Use a string path outside the store, e.g. managed by agenix or sops-nix.";
      };
      quota = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "2GiB";
      };
      aliases = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "More addresses of this mailbox (local parts or addresses in local domains).";
      };
      sendAs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "*@example.net" ];
      };
    };
  };

  domainOpts = {
    options = {
      mailboxes = mkOption {
        type = types.attrsOf (types.submodule mailboxOpts);
        default = { };
      };
      aliases = mkOption {
        type = types.attrsOf (types.listOf types.str);
        default = { };
        example = {
          team = [
            "alice"
            "bob@elsewhere.example"
          ];
        };
      };
      catchAll = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      dkimSelectors = mkOption {
        type = types.listOf types.str;
        default = [ "mailc" ];
        description = "DKIM selectors; keys are created in /var/lib/mailc/dkim by `mailc dkim keygen`.";
      };
      dmarc = mkOption {
        type = types.nullOr (
          types.submodule {
            options = {
              policy = mkOption {
                type = types.enum [
                  "none"
                  "quarantine"
                  "reject"
                ];
                default = "quarantine";
              };
              rua = mkOption {
                type = types.nullOr types.str;
                default = null;
              };
            };
          }
        );
        default = { };
      };
      extraSettings = mkOption {
        type = types.attrsOf types.anything;
        default = { };
        description = "More children of the `domain` node, in the Nix form of the config (see schema/config.schema.json).";
      };
    };
  };
in
{
  options.services.mailc = {
    enable = mkEnableOption "the mailc mail server";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
    };

    hostname = mkOption {
      type = types.str;
      example = "mail.example.com";
      description = "Fully qualified name of the server (SMTP greeting, MX target).";
    };

    listeners = mkOption {
      type = types.listOf (
        types.submodule {
          options = {
            kind = mkOption {
              type = types.enum [
                "smtp"
                "submission"
                "submissions"
                "imap"
                "imaps"
                "pop3"
                "pop3s"
                "lmtp"
                "managesieve"
                "http"
                "https"
              ];
            };
            address = mkOption {
              type = types.str;
              example = "0.0.0.0:25";
            };
          };
        }
      );
      default = [
        {
          kind = "smtp";
          address = "0.0.0.0:25";
        }
        {
          kind = "submissions";
          address = "0.0.0.0:465";
        }
        {
          kind = "imaps";
          address = "0.0.0.0:993";
        }
      ];
    };

    tls = {
      acmeHost = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Use the certificate of `security.acme.certs.<name>`; the service is reloaded when it is renewed.";
      };
      certFile = mkOption {
        type = types.nullOr types.path;
        default = null;
      };
      keyFile = mkOption {
        type = types.nullOr types.path;
        default = null;
      };
      selfSigned = mkOption {
        type = types.bool;
        default = false;
        description = "Generate a self-signed certificate (testing only).";
      };
    };

    domains = mkOption {
      type = types.attrsOf (types.submodule domainOpts);
      default = { };
    };

    settings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      description = "More top-level nodes in the Nix form of the config (RFC 42 freeform; see schema/config.schema.json), e.g. `inbound`, `limits`, `timeouts`.";
      example = {
        inbound.max-message-size = "50MiB";
      };
    };

    configFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A KDL config to use as it is instead of the one generated from the options.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the TCP ports of the configured listeners.";
    };

    sendmail.enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Install `sendmail` (`mailc sendmail`, reading /etc/mailc/config.kdl) for
        cron, mutt, git send-email and mail(1): on PATH, and as
        /run/wrappers/bin/sendmail through `services.mail.sendmailSetuidWrapper`
        (the path NixOS programs use), without setuid or setgid. Only root and
        the mailc user may submit (the control socket is 0600); other users get
        exit code 77 (EX_NOPERM).
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.tls.certFile == null) == (cfg.tls.keyFile == null);
        message = "services.mailc.tls: set both certFile and keyFile, or neither";
      }
    ];

    users.users.mailc = {
      isSystemUser = true;
      group = "mailc";
      home = "/var/lib/mailc";
    };
    users.groups.mailc = { };

    environment.etc."mailc/config.kdl".source = checkedConfig;
    environment.systemPackages = [ cfg.package ] ++ lib.optional cfg.sendmail.enable sendmailCommand;

    # The conventional path, but no privilege: the wrapper runs as its caller.
    services.mail.sendmailSetuidWrapper = mkIf cfg.sendmail.enable {
      program = "sendmail";
      source = "${sendmailCommand}/bin/sendmail";
      owner = "root";
      group = "root";
      setuid = false;
      setgid = false;
    };

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall generated.ports;

    security.acme.certs = mkIf (cfg.tls.acmeHost != null) {
      ${cfg.tls.acmeHost}.reloadServices = [ "mailc.service" ];
    };

    systemd.services.mailc = {
      description = "mailc mail server";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ] ++ lib.optional (cfg.tls.acmeHost != null) "acme-finished-${cfg.tls.acmeHost}.target";
      # A config change reloads (SIGHUP) instead of restarting.
      reloadTriggers = [ checkedConfig ];
      serviceConfig = {
        ExecStartPre = [
          "${lib.getExe cfg.package} check /etc/mailc/config.kdl"
          "${lib.getExe cfg.package} dkim keygen /etc/mailc/config.kdl"
        ];
        ExecStart = "${lib.getExe cfg.package} serve /etc/mailc/config.kdl";
        ExecReload = [
          "${lib.getExe cfg.package} check /etc/mailc/config.kdl"
          "${pkgs.coreutils}/bin/kill -HUP $MAINPID"
        ];
        LoadCredential = map (c: "${c.name}:${c.path}") generated.credentials;
        User = "mailc";
        Group = "mailc";
        StateDirectory = "mailc";
        StateDirectoryMode = "0700";
        UMask = "0077";
        Restart = "on-failure";
        LimitNOFILE = 65536;
        TimeoutStopSec = 60;

        AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" ];
        CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectHostname = true;
        ProtectClock = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
      };
    };
  };
}
