# alice's script: mailing lists into a folder, a vacation reply to people.
require ["fileinto", "mailbox", "imap4flags", "vacation"];

# Mailing lists: into their folder, marked read.
if exists "List-Id" {
    fileinto :create :flags "\\Seen" "Lists";
    stop;
}

# Away: one reply per sender every 7 days (RFC 5230); never to lists,
# bulk or automatic mail, never to the null sender.
vacation :days 7
         :subject "Away until 4 January"
         :addresses ["alice@example.org", "a.smith@example.org"]
"I am away until 4 January and read mail after that.
For anything urgent, write to bob@example.org.";
