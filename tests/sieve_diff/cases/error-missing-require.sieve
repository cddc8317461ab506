# fileinto without require.
keep;
fileinto "x";
