require ["duplicate", "variables", "fileinto"];
if header :matches "message-id" "*" { set "id" "${1}"; }
if duplicate :uniqueid "${id}" :handle "h" { discard; } else { fileinto "First"; }
