require ["encoded-character", "fileinto"];
if header :contains "subject" "${hex:51 75}arterly" { fileinto "Hex"; }
