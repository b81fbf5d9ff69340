//! Client ID metadata documents.
