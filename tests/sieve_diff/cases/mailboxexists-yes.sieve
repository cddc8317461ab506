# folders: Work
require ["fileinto", "mailbox"];
if mailboxexists "Work" { fileinto "Work"; } else { fileinto "Elsewhere"; }
