require ["mailbox", "fileinto"];
if mailboxexists "INBOX" { fileinto "InboxExists"; }
