# From the values of the `services.mailc` options to the mailc configuration
# in its Nix form (rendered to KDL by ./kdl.nix), plus the credentials the
# unit must load and the ports to open. Builtins only, so CI can evaluate it
# without nixpkgs; nix/module.nix adds the option types around it.
#
# Secrets never enter the configuration: every password hash and TLS key is
# passed to the service with LoadCredential and named in the config by its
# path under /run/credentials/mailc.service/.
{
  hostname,
  stateDir ? "/var/lib/mailc",
  listeners ? [
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
  ],
  tls ? { },
  domains ? { },
  settings ? { },
  credentialsDirectory ? "/run/credentials/mailc.service",
  ...
}:
let
  inherit (builtins)
    attrNames
    concatLists
    filter
    isNull
    length
    listToAttrs
    map
    toString
    ;

  cred = name: "${credentialsDirectory}/${name}";

  nonNull = attrs: listToAttrs (map (k: {
    name = k;
    value = attrs.${k};
  }) (filter (k: !(isNull attrs.${k})) (attrNames attrs)));

  tls0 = {
    selfSigned = false;
    certFile = null;
    keyFile = null;
    acmeHost = null;
    acmeDirectory = null;
  } // tls;
  # Without the module (CI), an ACME certificate lives where NixOS puts it.
  tlsCfg = tls0 // {
    acmeDirectory =
      if tls0.acmeDirectory == null && tls0.acmeHost != null then "/var/lib/acme/${tls0.acmeHost}" else tls0.acmeDirectory;
  };

  tlsCredentials =
    if tlsCfg.acmeDirectory != null then
      [
        {
          name = "tls-cert";
          path = "${tlsCfg.acmeDirectory}/fullchain.pem";
        }
        {
          name = "tls-key";
          path = "${tlsCfg.acmeDirectory}/key.pem";
        }
      ]
    else if tlsCfg.certFile != null then
      [
        {
          name = "tls-cert";
          path = toString tlsCfg.certFile;
        }
        {
          name = "tls-key";
          path = toString tlsCfg.keyFile;
        }
      ]
    else
      [ ];

  tlsNode =
    if tlsCredentials != [ ] then
      {
        tls._props = {
          cert = cred "tls-cert";
          key = cred "tls-key";
        };
      }
    else if tlsCfg.selfSigned then
      { tls._props.self-signed = true; }
    else
      { };

  mailboxDefaults = {
    hashedPasswordFile = null;
    quota = null;
    aliases = [ ];
    sendAs = [ ];
  };

  domainDefaults = {
    mailboxes = { };
    aliases = { };
    catchAll = null;
    dkimSelectors = [ "mailc" ];
    dmarc = {
      policy = "quarantine";
      rua = null;
    };
    extraSettings = { };
  };

  # systemd credential names are file names: readable when the address is
  # plain ASCII, a hash of it otherwise.
  credentialName =
    domain: local:
    let
      address = "${local}@${domain}";
    in
    if builtins.match "[A-Za-z0-9.@_+-]+" address != null then
      "mailbox-${address}"
    else
      "mailbox-${builtins.substring 0 16 (builtins.hashString "sha256" address)}";

  mailboxNode =
    domain: local: m0:
    let
      m = mailboxDefaults // m0;
    in
    {
      _args = [ local ];
      _props = nonNull {
        password-file = if isNull m.hashedPasswordFile then null else cred (credentialName domain local);
        inherit (m) quota;
      };
    }
    // (if m.aliases == [ ] then { } else { alias = m.aliases; })
    // (if m.sendAs == [ ] then { } else { send-as = m.sendAs; });

  domainNode =
    name: d0:
    let
      d = domainDefaults // d0;
    in
    {
      _args = [ name ];
    }
    // (
      if d.dkimSelectors == [ ] then
        { }
      else
        { dkim = map (s: { _props.selector = s; }) d.dkimSelectors; }
    )
    // (
      if isNull d.dmarc then
        { }
      else
        let
          dmarc = domainDefaults.dmarc // d.dmarc;
        in
        {
          dmarc._props = nonNull {
            inherit (dmarc) policy rua;
          };
        }
    )
    // (
      let
        locals = attrNames d.mailboxes;
      in
      if locals == [ ] then { } else { mailbox = map (l: mailboxNode name l d.mailboxes.${l}) locals; }
    )
    // (
      let
        names = attrNames d.aliases;
      in
      if names == [ ] then
        { }
      else
        {
          alias = map (a: {
            _args = [ a ];
            to = d.aliases.${a};
          }) names;
        }
    )
    // (if isNull d.catchAll then { } else { catch-all = d.catchAll; })
    // d.extraSettings;

  mailboxCredentials = concatLists (
    map (
      domain:
      let
        d = domainDefaults // domains.${domain};
      in
      map (local: {
        name = credentialName domain local;
        path = toString (mailboxDefaults // d.mailboxes.${local}).hashedPasswordFile;
      }) (filter (local: !(isNull (mailboxDefaults // d.mailboxes.${local}).hashedPasswordFile)) (attrNames d.mailboxes))
    ) (attrNames domains)
  );

  lastOf = list: builtins.elemAt list (length list - 1);
  portOf = address: builtins.fromJSON (lastOf (builtins.split ":" address));
in
{
  settings =
    {
      inherit hostname;
      state = stateDir;
      listen = map (l: { _args = [ l.kind l.address ]; }) listeners;
    }
    // tlsNode
    // (
      let
        names = attrNames domains;
      in
      if names == [ ] then { } else { domain = map (n: domainNode n domains.${n}) names; }
    )
    // settings;

  credentials = tlsCredentials ++ mailboxCredentials;

  ports = map (l: portOf l.address) listeners;
}
