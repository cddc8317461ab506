require ["include", "fileinto"];
include "reports";
fileinto :copy "AfterInclude";
