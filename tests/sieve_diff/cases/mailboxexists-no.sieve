# folders: Work
require ["fileinto", "mailbox"];
if mailboxexists ["Work", "Play"] { fileinto "Both"; } else { discard; }
