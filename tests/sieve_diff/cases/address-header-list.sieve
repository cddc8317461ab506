require "fileinto";
if address :is ["to", "cc"] ["carol@example.net", "nobody@example.org"] { fileinto "AnyOf"; }
