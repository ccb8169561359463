//! `GET /instruments…`: the stored feed on the API.
