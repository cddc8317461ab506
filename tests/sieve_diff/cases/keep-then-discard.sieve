# RFC 5228 §4.5: discard cancels the implicit keep only; the explicit keep stores.
keep;
discard;
