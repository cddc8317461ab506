require "fileinto";
if header :contains "x-priority" "" { fileinto "Exists"; }
if header :contains "x-missing" "" { fileinto "Never"; }
