// JSON answers of the REST API: a body, or {"error": {code, message}} with the HTTP status of the
// code.
#pragma once

#include <nlohmann/json.hpp>

#include "base/http_server.h"
#include "base/status.h"

namespace cairn::server {

inline int HttpStatus(Code c) {
  switch (c) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kAlreadyExists:
      return 409;
    case Code::kFailedPrecondition:
      return 409;
    case Code::kUnauthenticated:
      return 401;
    case Code::kPermissionDenied:
      return 403;
    case Code::kUnavailable:
      return 503;
    case Code::kInternal:
      return 500;
  }
  return 500;
}

inline void SendJson(http::Response& res, const nlohmann::json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

inline void SendError(http::Response& res, const Status& s) {
  SendJson(res, {{"error", {{"code", CodeName(s.code())}, {"message", s.message()}}}},
           HttpStatus(s.code()));
}

}  // namespace cairn::server
