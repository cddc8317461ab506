require ["variables", "fileinto"];
set :lower :upperfirst "name" "QUARTERLY";
set :length "len" "${name}";
if string :is "${name}-${len}" "Quarterly-9" { fileinto "Mods-ok"; } else { fileinto "Mods-${name}-${len}"; }
