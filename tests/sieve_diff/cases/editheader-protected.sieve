# RFC 5293 §6: Received headers are not to be deleted.
require ["editheader", "fileinto"];
deleteheader "received";
if exists "received" { fileinto "StillThere"; } else { fileinto "Gone"; }
