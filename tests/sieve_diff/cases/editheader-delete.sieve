require ["editheader", "fileinto"];
deleteheader "x-priority";
if not exists "x-priority" { fileinto "NoPriority"; }
