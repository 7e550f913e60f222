-- POST /generateToken for the operator-chosen (Argon2id) user.
wrk.method = "POST"
wrk.path = "/generateToken?username=chosen&password=operator-chosen-password"
