require ["variables", "fileinto"];
set :quotewildcard "pat" "a*b?";
if string :is "${pat}" "a\\*b\\?" { fileinto "Quoted"; }
