require ["duplicate", "fileinto"];
if duplicate :header "message-id" :seconds 3600 { discard; }
