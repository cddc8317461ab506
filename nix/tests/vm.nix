# NixOS VM test: swaks to port 25 and to 587 with AUTH, the message read
# back over IMAPS, an unknown recipient rejected, and a config change
# applied by reload with the PID unchanged. Requires Nix >= 2.18:
#   nix build .#checks.x86_64-linux.vm
{ self, pkgs }:
let
  # Test only: a hash in the store. Real systems keep it outside (agenix, sops-nix).
  hash = pkgs.writeText "alice.hash" "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$14ukWqiThj4Xz77NYv01V28GbBZHY9AaZwsFswQFO0U\n";
  base = {
    imports = [ self.nixosModules.default ];
    services.mailc = {
      enable = true;
      hostname = "mail.example.test";
      tls.selfSigned = true;
      listeners = [
        {
          kind = "smtp";
          address = "0.0.0.0:25";
        }
        {
          kind = "submission";
          address = "0.0.0.0:587";
        }
        {
          kind = "imaps";
          address = "0.0.0.0:993";
        }
      ];
      domains."example.test".mailboxes.alice = {
        hashedPasswordFile = "${hash}";
        aliases = [ "postmaster" ];
      };
    };
    environment.systemPackages = [
      pkgs.swaks
      pkgs.python3
    ];
  };
in
pkgs.testers.runNixOSTest {
  name = "mailc";
  nodes.machine = {
    imports = [ base ];
    specialisation.withBob.configuration = {
      services.mailc.domains."example.test".mailboxes.bob.hashedPasswordFile = "${hash}";
    };
  };
  testScript = ''
    machine.wait_for_unit("mailc.service")
    for port in (25, 587, 993):
        machine.wait_for_open_port(port)

    machine.succeed("swaks --server localhost:25 --from x@remote.example --to alice@example.test --h-Subject via-25")
    machine.succeed(
        "swaks --server localhost:587 --tls --auth PLAIN --auth-user alice@example.test "
        "--auth-password secret --from alice@example.test --to alice@example.test --h-Subject via-587"
    )
    machine.fail("swaks --server localhost:25 --from x@remote.example --to nobody@example.test")

    machine.succeed("""python3 - <<'EOF'
    import imaplib, ssl, time
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    for _ in range(50):
        m = imaplib.IMAP4_SSL("localhost", 993, ssl_context=ctx)
        m.login("alice@example.test", "secret")
        m.select("INBOX")
        typ, data = m.search(None, "ALL")
        if len(data[0].split()) >= 2:
            break
        m.logout(); time.sleep(0.2)
    subjects = [m.fetch(n, "(BODY[HEADER.FIELDS (SUBJECT)])")[1][0][1] for n in data[0].split()]
    assert any(b"via-25" in s for s in subjects), subjects
    assert any(b"via-587" in s for s in subjects), subjects
    EOF""")

    # A config change is applied by reload: same PID, the new mailbox works.
    pid = machine.succeed("systemctl show -p MainPID --value mailc").strip()
    machine.fail("swaks --server localhost:25 --from x@remote.example --to bob@example.test")
    machine.succeed("/run/current-system/specialisation/withBob/bin/switch-to-configuration test")
    machine.wait_until_succeeds("swaks --server localhost:25 --from x@remote.example --to bob@example.test")
    assert pid == machine.succeed("systemctl show -p MainPID --value mailc").strip(), "mailc was restarted, not reloaded"
  '';
}
